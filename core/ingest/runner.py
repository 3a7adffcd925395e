"""Claims pending inbound rows and runs the pipeline, one transaction per message.

The claim (`FOR UPDATE SKIP LOCKED`) and the outcome share that transaction, so a row is
processed exactly once however many runners there are, and a crash leaves it pending.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone

from sqlalchemy import or_, select

from core.db import Database
from core.enums import InboundStatus
from core.ingest.models import InboundMessage
from core.ingest.pipeline import Pipeline, apply_outcome
from core.metrics import Metrics

log = logging.getLogger(__name__)


class IngestRunner:
    def __init__(
        self,
        db: Database,
        pipeline: Pipeline,
        metrics: Metrics,
        *,
        workers: int = 4,
        max_attempts: int = 5,
        poll_seconds: float = 1.0,
    ) -> None:
        self.db = db
        self.pipeline = pipeline
        self.metrics = metrics
        self.workers = workers
        self.max_attempts = max_attempts
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._stopping = False
        self._tasks: list[asyncio.Task[None]] = []

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(i)) for i in range(self.workers)]

    async def stop(self) -> None:
        """Finish the message in hand, then stop."""
        self._stopping = True
        self._wake.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def _loop(self, index: int) -> None:
        while not self._stopping:
            try:
                handled = await self.process_one()
            except Exception:
                log.exception("ingest worker %d: database trouble, backing off", index)
                handled = False
                await asyncio.sleep(self.poll_seconds)
            if handled:
                continue
            self._wake.clear()
            try:
                await asyncio.wait_for(self._wake.wait(), self.poll_seconds)
            except TimeoutError:
                pass

    async def drain(self) -> int:
        """Process until nothing is pending (CLI import, tests). Returns how many were handled."""
        count = 0
        while await self.process_one():
            count += 1
        return count

    async def process_one(self) -> bool:
        async with self.db.unit_of_work() as session:
            inbound = await session.scalar(
                select(InboundMessage)
                .where(
                    InboundMessage.status == InboundStatus.pending,
                    or_(
                        InboundMessage.retry_at.is_(None),
                        InboundMessage.retry_at <= datetime.now(timezone.utc),
                    ),
                )
                .order_by(InboundMessage.received_at)
                .limit(1)
                .with_for_update(skip_locked=True)
            )
            if inbound is None:
                return False
            try:
                # a savepoint: a failure of ours undoes the half-made ticket, keeps the claim
                async with session.begin_nested():
                    outcome = await self.pipeline.run(session, inbound)
            except Exception as exc:
                log.exception("ingest of %s (Message-ID %s) failed", inbound.id, inbound.message_id)
                self._record_failure(inbound, f"{type(exc).__name__}: {exc}")
                return True
            apply_outcome(inbound, outcome)
            log.info(
                "inbound %s Message-ID %s: %s %s", inbound.id, inbound.message_id,
                outcome.status.value, outcome.reason or outcome.matched_rule or "",
            )
            received_at = inbound.received_at
        self.metrics.ingested.labels(outcome.status.value).inc()
        if outcome.status is InboundStatus.quarantined:
            self.metrics.quarantined.labels("sender").inc()
        self.metrics.ingest_latency.observe(
            max(0.0, (datetime.now(timezone.utc) - received_at).total_seconds())
        )
        return True

    def _record_failure(self, inbound: InboundMessage, error: str) -> None:
        """Ours, not the sender's: retry with backoff, quarantine after `max_attempts`."""
        self.metrics.ingest_errors.inc()
        inbound.attempts += 1
        inbound.last_error = error[:2000]
        if inbound.attempts >= self.max_attempts:
            inbound.status = InboundStatus.quarantined
            inbound.reason = f"could not be processed after {inbound.attempts} attempts: {error[:500]}"
            self.metrics.quarantined.labels("internal").inc()
            log.error("inbound %s Message-ID %s quarantined: %s", inbound.id, inbound.message_id, error)
        else:
            delay = min(300, 2**inbound.attempts)
            inbound.retry_at = datetime.now(timezone.utc) + timedelta(seconds=delay)
