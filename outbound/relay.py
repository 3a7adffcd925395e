"""The outbox relay: committed `outbox_events` rows ▸ Kafka (or the in-process consumers).

One transaction per batch: claim the oldest unpublished rows (`FOR UPDATE SKIP LOCKED`, so
several relays share the work and none publishes a row another holds), publish them, and mark
them published only after the broker acknowledged them — a crash in between publishes them
again (consumers deduplicate by event_id); nothing committed is left behind. A ticket's events
keep their order: a row waits while an older row of the same ticket is held by another relay.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import Database
from core.events import OutboxEvent
from core.metrics import Metrics
from core.pacing import pause, step_aside

log = logging.getLogger(__name__)

MAX_BACKOFF = 5.0
# while `defer_while` holds (mail being accepted, tickets behind), publishing (and, in one
# process, the mailing it drives) still gets at least this share of the time: a long flood
# delays notifications, it cannot stop them
MIN_SHARE = 0.1


class Publisher(Protocol):
    async def publish(self, events: Sequence[tuple[str, str, dict[str, Any]]]) -> None: ...

    async def close(self) -> None: ...


class InProcessPublisher:
    """No Kafka: the same consumers, called here; publishing means they all handled the batch."""

    def __init__(self, handlers: Sequence[Callable[[list[dict[str, Any]]], Awaitable[None]]]) -> None:
        self.handlers = list(handlers)

    async def publish(self, events: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
        payloads = [payload for _, _, payload in events]
        for handler in self.handlers:
            await handler(payloads)

    async def close(self) -> None:
        return None


class OutboxRelay:
    def __init__(
        self, db: Database, publisher: Publisher, metrics: Metrics, *,
        batch_size: int = 200, poll_seconds: float = 0.2,
        defer_while: Callable[[], bool] = lambda: False,
    ) -> None:
        self.db = db
        # notifications wait while mail is being accepted or tickets are still being created
        self.defer_while = defer_while
        self.publisher = publisher
        self.metrics = metrics
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            done, _ = await asyncio.wait([self._task], timeout=10.0)
            if not done:  # a batch cut short is not marked published: it goes out again
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.publisher.close()

    async def _loop(self) -> None:
        backoff = 0.1
        loop = asyncio.get_running_loop()
        last_batch = 0.0  # seconds
        while not self._stopping:
            await step_aside(self.defer_while, worked=last_batch, share=MIN_SHARE,
                             stopping=lambda: self._stopping, poll=0.005)
            started = loop.time()
            # from here on a wake-up (an event committed, or stop) ends the pause below at once:
            # cleared after the batch, one that came during it was lost
            self._wake.clear()
            try:
                published = await self.publish_batch()
                last_batch = loop.time() - started
                backoff = 0.1
            except Exception as exc:
                log.warning("outbox relay: publishing failed (%r); retrying in %.1fs", exc, backoff)
                await self._pause(backoff)
                backoff = min(MAX_BACKOFF, backoff * 2)
                continue
            if not published:
                await self._pause(self.poll_seconds)

    async def _pause(self, seconds: float) -> None:
        await pause(self._wake, seconds, stopping=lambda: self._stopping)

    async def drain(self) -> int:
        """Publish until nothing is left (tests, benchmarks); raises if publishing fails."""
        total = 0
        while count := await self.publish_batch():
            total += count
        return total

    async def publish_batch(self) -> int:
        """Publishes one batch; returns how many rows were published (0: nothing to do)."""
        rows: list[Any] = []
        try:
            async with self.db.unit_of_work() as session:
                rows = await self._claim(session)
                if not rows:
                    return 0
                ready = await self._in_ticket_order(session, rows)
                if not ready:
                    return 0
                await self.publisher.publish([(r.topic, r.key, r.payload) for r in ready])
                await session.execute(
                    update(OutboxEvent).where(OutboxEvent.id.in_([r.id for r in ready]))
                    .values(published_at=func.now(), attempts=OutboxEvent.attempts + 1, last_error=None)
                )
        except Exception as exc:
            self.metrics.outbox_errors.inc()
            if rows:
                await self._record_failure([r.id for r in rows], f"{type(exc).__name__}: {exc}")
            raise
        self.metrics.outbox_published.inc(len(ready))
        return len(ready)

    async def _claim(self, session: AsyncSession) -> list[Any]:
        return list((await session.execute(
            select(OutboxEvent.id, OutboxEvent.topic, OutboxEvent.key, OutboxEvent.payload, OutboxEvent.created_at)
            .where(OutboxEvent.published_at.is_(None))
            # created_at is the transaction's start: occurred_at orders one transaction's events
            .order_by(OutboxEvent.created_at, OutboxEvent.payload["occurred_at"].astext, OutboxEvent.id)
            .limit(self.batch_size)
            .with_for_update(skip_locked=True)
        )).all())

    async def _in_ticket_order(self, session: AsyncSession, rows: list[Any]) -> list[Any]:
        """Leaves out rows with an older unpublished event of the same ticket outside this batch."""
        ids = [r.id for r in rows]
        older = dict((await session.execute(
            select(OutboxEvent.key, func.min(OutboxEvent.created_at))
            .where(
                OutboxEvent.published_at.is_(None),
                OutboxEvent.key.in_({r.key for r in rows}),
                OutboxEvent.id.not_in(ids),
            ).group_by(OutboxEvent.key)
        )).all())
        return [r for r in rows if not (r.key in older and older[r.key] < r.created_at)]

    async def _record_failure(self, ids: list[uuid.UUID], error: str) -> None:
        try:
            async with self.db.unit_of_work() as session:
                await session.execute(
                    update(OutboxEvent)
                    .where(OutboxEvent.id.in_(ids), OutboxEvent.published_at.is_(None))
                    .values(attempts=OutboxEvent.attempts + 1, last_error=error[:2000])
                )
        except Exception:
            log.debug("could not record the publish failure", exc_info=True)
