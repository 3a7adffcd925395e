"""The indexer: outbox events in, search documents out, converging with the database.

enqueue  the consumer (in-process behind the outbox relay, or the Kafka group `helpdesk-search`):
         each event names a ticket (or a customer, whose tickets follow); the ticket is queued in
         `search_queue`, one row per ticket however many events named it. Cheap and idempotent:
         a redelivered event queues what is already queued.
drain    claims queued tickets (`FOR UPDATE SKIP LOCKED`: several workers share the queue) and
         rebuilds their documents from the database, in one transaction with the queue rows'
         removal. A document is always built from committed data, whatever the order or number
         of events, so after any crash the index converges; a backend that refuses (Meilisearch
         away) leaves the rows queued, retried with backoff, and never holds up the outbox.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from core.db import Database
from core.events import CUSTOMER_UPDATED
from core.metrics import Metrics
from core.pacing import pause
from search.backend import SearchBackend

log = logging.getLogger(__name__)

SEARCH_GROUP = "helpdesk-search"
BATCH_SIZE = 200
MAX_BACKOFF = 60.0

_ENQUEUE = """
INSERT INTO search_queue (ticket_id, queued_at, event_at)
SELECT id, clock_timestamp(), at FROM unnest($1::uuid[], $2::timestamptz[]) AS q(id, at)
ON CONFLICT (ticket_id) DO UPDATE SET queued_at = EXCLUDED.queued_at,
    event_at = least(search_queue.event_at, EXCLUDED.event_at)
"""
_ENQUEUE_CUSTOMERS = """
INSERT INTO search_queue (ticket_id, queued_at, event_at)
SELECT t.id, clock_timestamp(), clock_timestamp() FROM tickets t
WHERE t.requester_id = ANY($1::uuid[]) AND t.deleted_at IS NULL
ON CONFLICT (ticket_id) DO UPDATE SET queued_at = EXCLUDED.queued_at
"""
_CLAIM = """
SELECT ticket_id, event_at FROM search_queue
WHERE not_before IS NULL OR not_before <= clock_timestamp()
ORDER BY event_at LIMIT $1 FOR UPDATE SKIP LOCKED
"""
_FAILED = """
UPDATE search_queue SET attempts = attempts + 1, last_error = $2,
    not_before = clock_timestamp() + least($3::float8, 2 ^ least(attempts, 10)) * interval '1 second'
WHERE ticket_id = ANY($1::uuid[])
"""


def _event_time(event: dict[str, Any]) -> datetime:
    try:
        return datetime.fromisoformat(str(event.get("occurred_at")))
    except ValueError:
        return datetime.now().astimezone()


class SearchIndexer:
    def __init__(
        self, db: Database, backend: SearchBackend, metrics: Metrics, *,
        batch_size: int = BATCH_SIZE, poll_seconds: float = 1.0,
    ) -> None:
        self.db = db
        self.backend = backend
        self.metrics = metrics
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self._wake = asyncio.Event()
        self._stopping = False
        self._task: asyncio.Task[None] | None = None

    # ---- enqueue: the events' consumer ----

    async def handle_batch(self, events: list[dict[str, Any]]) -> None:
        """Queues the tickets the events name; raises only for database trouble (events come again)."""
        tickets: dict[uuid.UUID, datetime] = {}
        customers: set[uuid.UUID] = set()
        for event in events:
            try:
                if event.get("type") == CUSTOMER_UPDATED:
                    customers.add(uuid.UUID(str(event["customer_id"])))
                    for other in event.get("ticket_ids") or ():
                        tickets[uuid.UUID(str(other))] = _event_time(event)
                    continue
                ticket_id = uuid.UUID(str((event.get("ticket") or {})["id"]))
            except (KeyError, ValueError, TypeError):
                log.warning("search: event %s names no ticket; skipped", event.get("event_id"))
                continue
            at = _event_time(event)
            tickets[ticket_id] = min(at, tickets.get(ticket_id, at))
        if not tickets and not customers:
            return
        async with self.db.driver_transaction() as connection:
            if tickets:
                await connection.execute(_ENQUEUE, list(tickets), list(tickets.values()))
            if customers:
                await connection.execute(_ENQUEUE_CUSTOMERS, list(customers))
        self._wake.set()

    # ---- drain: documents from the database ----

    async def drain_once(self) -> int:
        """Indexes one batch of queued tickets; returns how many (0: nothing ready)."""
        ids: list[uuid.UUID] = []
        try:
            async with self.db.driver_transaction() as connection:
                rows = await connection.fetch(_CLAIM, self.batch_size)
                if not rows:
                    return 0
                ids = [r["ticket_id"] for r in rows]
                await self.backend.index(connection, ids)
                await connection.execute("DELETE FROM search_queue WHERE ticket_id = ANY($1::uuid[])", ids)
                now = await connection.fetchval("SELECT clock_timestamp()")
        except Exception as exc:
            self.metrics.search_index_errors.inc()
            if ids:
                await self._record_failure(ids, f"{type(exc).__name__}: {exc}")
            raise
        self.metrics.search_indexed.inc(len(ids))
        for row in rows:
            self.metrics.search_index_latency.observe(max(0.0, (now - row["event_at"]).total_seconds()))
        return len(ids)

    async def drain(self) -> int:
        """Everything queued and ready (tests, the reindex command); raises if indexing fails."""
        total = 0
        while count := await self.drain_once():
            total += count
        return total

    async def _record_failure(self, ids: Sequence[uuid.UUID], error: str) -> None:
        try:
            async with self.db.driver_transaction() as connection:
                await connection.execute(_FAILED, list(ids), error[:2000], MAX_BACKOFF)
        except Exception:
            log.debug("search: could not record the failure", exc_info=True)

    # ---- the loop of the worker role ----

    def wake(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        self._stopping = False
        await self.backend.start()
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        if self._task is not None:
            done, _ = await asyncio.wait([self._task], timeout=10.0)
            if not done:  # a batch cut short is rolled back: its tickets stay queued
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.backend.close()

    async def _loop(self) -> None:
        backoff = 0.2
        while not self._stopping:
            self._wake.clear()
            try:
                indexed = await self.drain_once()
                backoff = 0.2
            except Exception as exc:
                log.warning("search: indexing failed (%r); retrying in %.1fs", exc, backoff)
                await self._pause(backoff)
                backoff = min(MAX_BACKOFF, backoff * 2)
                continue
            if not indexed:
                await self._pause(self.poll_seconds)

    async def _pause(self, seconds: float) -> None:
        await pause(self._wake, seconds, stopping=lambda: self._stopping)
