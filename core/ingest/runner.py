"""Claims pending inbound rows and runs the pipeline on them, a batch per transaction.

The claim (`FOR UPDATE SKIP LOCKED`) and the outcomes share that transaction, so a row is
processed exactly once however many runners there are, and a crash leaves it pending. A batch
that fails is retried message by message, each in a savepoint: a failure of ours then undoes
only that message's work and is recorded on it.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from sqlalchemy import or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import Database, driver_of
from core.enums import InboundStatus
from core.ingest.models import InboundMessage, InboundStart
from core.ingest.pipeline import Outcome, Pipeline
from core.metrics import Metrics
from core.pacing import pause, step_aside

log = logging.getLogger(__name__)


def _never_busy() -> bool:
    return False


# the batch's outcomes written and its counts of starts (no longer needed once settled, and gone
# with this commit only) deleted, in one statement on the session's connection (the ORM's
# UPDATE by primary key and DELETE took two, and compiled for every batch size)
_SETTLE = f"""
WITH settled AS (DELETE FROM {InboundStart.__tablename__} WHERE inbound_id = ANY($1::uuid[]))
UPDATE {InboundMessage.__tablename__} m SET status = o.status::inbound_status, reason = o.reason,
    matched_rule = o.matched_rule, mail_kind = o.mail_kind, ticket_id = o.ticket_id, comment_id = o.comment_id,
    duplicate_of_id = o.duplicate_of_id, auth_verdict = o.auth_verdict, processed_at = $10
FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::uuid[], $7::uuid[], $8::uuid[], $9::text[])
    AS o(id, status, reason, matched_rule, mail_kind, ticket_id, comment_id, duplicate_of_id, auth_verdict)
WHERE m.id = o.id
"""

# a start counted for each claimed row, committed by itself before any work (plain SQL: the
# ORM's INSERT of one VALUES row per message was compiled anew for every batch size)
_START = f"""
INSERT INTO {InboundStart.__tablename__} (inbound_id, starts) SELECT unnest($1::uuid[]), 1
ON CONFLICT (inbound_id) DO UPDATE SET starts = {InboundStart.__tablename__}.starts + 1
RETURNING inbound_id, starts
"""

# while `defer_while` holds, ticket creation still gets a share of the time, the larger the
# longer the mail it takes had waited: a burst is accepted at nearly the speed of a front
# alone and becomes tickets right after, and a flood that lasts cannot stop ticket creation
# (a fixed fifth held two processes' acceptance at 46-59% of a bare server, bench/ingest.py)
MIN_SHARE = 0.05
MAX_SHARE = 0.5
MAX_SHARE_AFTER = 30.0  # seconds the oldest message of the last batch had waited


def share_after(waited: float) -> float:
    """Ticket creation's least share of the time once mail has waited `waited` seconds."""
    return min(MAX_SHARE, MIN_SHARE + (MAX_SHARE - MIN_SHARE) * max(0.0, waited) / MAX_SHARE_AFTER)


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
        batch: int = 32,
        linger: float = 0.0,
        defer_while: Callable[[], bool] = _never_busy,
    ) -> None:
        self.db = db
        self.pipeline = pipeline
        self.metrics = metrics
        self.workers = workers
        self.max_attempts = max_attempts
        self.poll_seconds = poll_seconds
        self.batch = batch
        # mail that arrives as a stream rather than a backlog is taken a few messages at a time:
        # a batch costs about fifteen statements and a commit whatever its size, a message about
        # two milliseconds of CPU: batches of one cost about four times what batches of ten do
        self.linger = linger
        # in a process that also accepts mail, senders waiting for their 250 go first
        self.defer_while = defer_while
        self._wake = asyncio.Event()
        self._stopping = False
        self._stopped = asyncio.Event()  # ends a linger; `_wake` cannot, mail sets it too
        self._behind = False  # the last batch claimed was full: more is waiting
        self._capacity = 0.0  # messages per second while working, smoothed over full batches
        self._waited = 0.0  # seconds the oldest message of the last batch claimed had waited
        self._tasks: list[asyncio.Task[None]] = []

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._tasks = [asyncio.create_task(self._loop(i)) for i in range(self.workers)]

    async def stop(self) -> None:
        """Finish the messages in hand, then stop."""
        self._stopping = True
        self._stopped.set()
        self._wake.set()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self.pipeline.parser.close()

    async def _loop(self, index: int) -> None:
        loop = asyncio.get_running_loop()
        last_batch = 0.0  # seconds
        while not self._stopping:
            await step_aside(self.defer_while, worked=last_batch, share=self.share, stopping=lambda: self._stopping)
            if self.linger and not self._behind:  # a backlog fills its batches without waiting
                await pause(self._stopped, self.linger, stopping=lambda: self._stopping)
            started = loop.time()
            # from here on a wake-up (mail committed, or stop) ends the wait below at once:
            # cleared after the batch, one that came during it was lost, and a stop then
            # waited out the whole poll interval
            self._wake.clear()
            try:
                handled = await self.process_batch()
                self._behind = handled >= self.batch
                last_batch = loop.time() - started
                if self._behind and last_batch > 0:
                    self._capacity += 0.2 * (handled / last_batch - self._capacity)
            except Exception:
                log.exception("ingest worker %d: database trouble, backing off", index)
                handled = 0
            if handled:
                continue
            await pause(self._wake, self.poll_seconds, stopping=lambda: self._stopping)

    @property
    def capacity(self) -> float:
        """How many messages per second this runner turns into tickets when it has a backlog."""
        return self._capacity

    @property
    def share(self) -> float:
        """The least share of the time ticket creation takes while `defer_while` holds: the
        longer the mail of the last batch had waited, the larger."""
        return share_after(self._waited)

    @property
    def behind(self) -> bool:
        """Pending mail is waiting to become tickets (the last batch claimed was full)."""
        return self._behind

    async def drain(self) -> int:
        """Process until nothing is pending (CLI import, tests). Returns how many were handled."""
        count = 0
        while handled := await self.process_batch():
            count += handled
        return count

    async def process_one(self) -> bool:
        return await self.process_batch(limit=1) == 1

    async def process_batch(self, limit: int | None = None) -> int:
        """Claims up to `limit` rows and handles them in one transaction. If that fails, each
        is handled again on its own, in a savepoint, so one bad message cannot hold up the
        others and its failure is recorded on it."""
        claimed: list[uuid.UUID] = []
        try:
            async with self.db.unit_of_work() as session:
                rows = await self._claim(session, limit or self.batch)
                claimed = [r.id for r in rows]
                if rows:  # oldest first; stamped by PostgreSQL's clock, read by ours: NTP keeps
                    # the two far closer than the 30 s over which the share grows
                    self._waited = (datetime.now(timezone.utc) - rows[0].received_at).total_seconds()
                rows, killers = await self._count_starts(rows)
                done = await self._apply(session, killers, [self._killed(r) for r in killers]) if killers else []
                if rows:  # no savepoint, even for one message: a failure is redone below
                    outcomes = await self.pipeline.run_batch(session, rows)
                    done += await self._apply(session, rows, outcomes)
        except Exception:
            if not claimed:
                raise
            log.warning("batch of %d failed; handling its messages one by one", len(claimed))
            for inbound_id in claimed:
                await self._process_alone(inbound_id)
            return len(claimed)
        self._observe(done)
        return len(claimed)

    async def _claim(self, session: AsyncSession, limit: int, ids: list[uuid.UUID] | None = None) -> list[InboundMessage]:
        query = select(InboundMessage).where(
            InboundMessage.status == InboundStatus.pending,
            or_(
                InboundMessage.retry_at.is_(None),
                InboundMessage.retry_at <= datetime.now(timezone.utc),
            ),
        )
        if ids is not None:
            query = query.where(InboundMessage.id.in_(ids))
        return list(await session.scalars(
            query.order_by(InboundMessage.received_at).limit(limit).with_for_update(skip_locked=True)
        ))

    async def _count_starts(
        self, rows: list[InboundMessage]
    ) -> tuple[list[InboundMessage], list[InboundMessage]]:
        """Counts a start for each row, committed now (before any work); splits off the rows
        whose earlier starts ended in neither an outcome nor a recorded failure often enough:
        they killed the process, and would kill every restart."""
        if not rows:
            return rows, []
        # autocommit, so the count survives a crash; from the read pool, as before: a second
        # connection from the pool the claim's transaction holds one of could wait for ever
        # once every connection of that pool is held by a runner waiting for its second
        async with self.db.read_engine.connect() as connection:
            starts = dict((await connection.exec_driver_sql(_START, ([r.id for r in rows],))).all())
        crashes = {r.id: starts.get(r.id, 1) - 1 - r.attempts for r in rows}
        killers = [r for r in rows if crashes[r.id] >= self.max_attempts]
        return [r for r in rows if crashes[r.id] < self.max_attempts], killers

    def _killed(self, inbound: InboundMessage) -> Outcome:
        log.error("inbound %s Message-ID %s: its processing killed the worker %d times; quarantined",
                  inbound.id, inbound.message_id, self.max_attempts)
        return Outcome(
            InboundStatus.quarantined,
            reason=f"processing it stopped the ingest worker {self.max_attempts} times (crash)",
        )

    async def _process_alone(self, inbound_id: uuid.UUID) -> None:
        async with self.db.unit_of_work() as session:
            rows = await self._claim(session, 1, ids=[inbound_id])
            done = await self._run_isolated(session, rows[0]) if rows else []
        self._observe(done)

    async def _run_isolated(
        self, session: AsyncSession, inbound: InboundMessage
    ) -> list[tuple[InboundMessage, Outcome]]:
        """One message in a savepoint: a failure of ours undoes its work and keeps the claim."""
        try:
            async with session.begin_nested():
                [outcome] = await self.pipeline.run_batch(session, [inbound])
        except Exception as exc:
            log.exception("ingest of %s (Message-ID %s) failed", inbound.id, inbound.message_id)
            self._record_failure(inbound, f"{type(exc).__name__}: {exc}")
            return []
        return await self._apply(session, [inbound], [outcome])

    async def _apply(
        self, session: AsyncSession, rows: list[InboundMessage], outcomes: list[Outcome]
    ) -> list[tuple[InboundMessage, Outcome]]:
        await session.flush()  # what the outcomes point at (tickets, comments) goes first
        async with driver_of(session) as driver:
            await driver.execute(
                _SETTLE, [r.id for r in rows], [o.status.value for o in outcomes], [o.reason for o in outcomes],
                [o.matched_rule for o in outcomes], [o.mail_kind for o in outcomes], [o.ticket_id for o in outcomes],
                [o.comment_id for o in outcomes], [o.duplicate_of_id for o in outcomes],
                [o.auth_verdict for o in outcomes], datetime.now(timezone.utc),
            )
        for inbound, outcome in zip(rows, outcomes, strict=True):
            log.debug(
                "inbound %s Message-ID %s: %s %s", inbound.id, inbound.message_id,
                outcome.status.value, outcome.reason or outcome.matched_rule or "",
            )
        return list(zip(rows, outcomes, strict=True))

    def _observe(self, done: list[tuple[InboundMessage, Outcome]]) -> None:
        now = datetime.now(timezone.utc)
        for inbound, outcome in done:
            self.metrics.ingested.labels(outcome.status.value).inc()
            if outcome.status is InboundStatus.quarantined:
                self.metrics.quarantined.labels("sender").inc()
            self.metrics.ingest_latency.observe(max(0.0, (now - inbound.received_at).total_seconds()))

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
