"""The mailer: events in, one email per (event, recipient), sent at most once as far as SMTP allows.

plan    one transaction per batch of events: who gets what ▸ an `outbound_deliveries` row per
        recipient with its Message-ID fixed now (and recorded in `message_ids`, so replies
        thread back). A redelivered event finds its rows and plans nothing new.
attempt one transaction per group of up to `mail_concurrency` deliveries (of different tickets),
        the rows locked (`FOR UPDATE SKIP LOCKED`) while the relay talks, sent side by side:
        pending ▸ sent / failed, or attempts+1 for a temporary failure. A crash after the relay's
        250 and before our commit sends those messages again: same Message-IDs. (As many were
        in flight before, with a transaction each; one per group saves the rest.)
sweep   retries pending rows on a backoff schedule (first retry after `mail_retry_seconds`,
        doubling), and picks up rows whose first attempt was lost with its process.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from email.message import Message
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import utcnow
from core.config import Settings
from core.customers.models import Customer
from core.db import Database, driver_of
from core.enums import DeliveryStatus
from core.events import Event, OutboundDelivery, TicketCreated, TriggerNotification, parse_event
from core.metrics import Metrics
from core.tickets.models import MessageId, Ticket
from outbound.budget import AckBudget
from outbound.compose import CannotCompose, Composer, lock_deliveries, new_message_id
from outbound.recipients import TICKET_CREATED, Screened, recipients_for, screen, sent_last_hour
from outbound.transport import PermanentFailure, TemporaryFailure, Transport

log = logging.getLogger(__name__)

# the event types that can mail someone; the rest (updated, deleted) are not the mailer's
MAILED = frozenset({
    "created", "assigned", "status_changed", "commented", "sla_warning", "notification", "satisfaction_survey",
})
FIRST_ATTEMPT_GRACE = 60.0  # a never-tried row older than this lost its process: sweep it
_DELIVERIES = OutboundDelivery.__table__
# one attempt's results, for many rows in one statement
_OUTCOME = f"""
UPDATE {_DELIVERIES.name} d SET attempts = o.attempts, status = o.status::delivery_status,
    sent_at = o.sent_at, last_error = o.last_error
FROM unnest($1::uuid[], $2::int[], $3::text[], $4::timestamptz[], $5::text[]) AS o(id, attempts, status, sent_at, last_error)
WHERE d.id = o.id
"""
# the planning of a batch, as plain statements on the session's connection (through the ORM
# each cost four to five times the CPU, and a plan is a handful of them per batch): the
# events' locks (a statement of its own: the read after it must see what the mailer that
# held them before us committed), the deliveries already planned, the tickets still there
_LOCK_EVENTS = "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k ORDER BY k"
_PLANNED = (f"SELECT id, event_id, status::text AS status FROM {_DELIVERIES.name}"
            " WHERE event_id = ANY($1::uuid[]) ORDER BY recipient")
_LIVE = f"SELECT id FROM {Ticket.__tablename__} WHERE id = ANY($1::uuid[]) AND deleted_at IS NULL"
_MESSAGE_IDS = MessageId.__table__
# the planned deliveries (pending), and for those that are new (not planned by a concurrent or
# earlier mailer: ON CONFLICT), their Message-IDs, so replies thread back; in one statement.
# Both rows get the transaction's now() as created_at: a delivery's thread is what came before.
_PLAN = f"""
WITH wanted AS (
    SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::uuid[], $4::text[], $5::text[], $6::text[], $7::uuid[], $8::uuid[])
        AS w(id, event_id, ticket_id, recipient, template, message_id, message_row_id, comment_id)
), planned AS (
    INSERT INTO {_DELIVERIES.name} (id, event_id, ticket_id, recipient, template, message_id, status)
    SELECT id, event_id, ticket_id, recipient, template, message_id, 'pending' FROM wanted
    ON CONFLICT ON CONSTRAINT uq_outbound_deliveries_event_recipient DO NOTHING
    RETURNING id, event_id
), threaded AS (
    INSERT INTO {_MESSAGE_IDS.name} (id, message_id, ticket_id, direction, comment_id)
    SELECT w.message_row_id, w.message_id, w.ticket_id, 'outbound', w.comment_id FROM planned JOIN wanted w USING (id)
    ON CONFLICT ON CONSTRAINT uq_message_ids_message_ticket DO NOTHING
)
SELECT id, event_id FROM planned
"""


def _lock_key(kind: str, value: str) -> int:
    return int.from_bytes(hashlib.sha256(f"{kind}|{value}".encode()).digest()[:8], "big", signed=True)


def _may_mail(payload: Any) -> bool:
    """Read from the payload before validating it: an event of a type that mails nobody, or
    whose mail the triggers decide (`mailed_by_triggers`: mail's `created` event, half of what
    the mailer reads), is dropped unparsed."""
    if not isinstance(payload, dict):
        return True  # `parse_event` says what is wrong with it
    return payload.get("type") in MAILED and payload.get("mailed_by_triggers") is not True


@dataclass(frozen=True)
class Planned:
    delivery_id: uuid.UUID
    key: str  # the ticket: its mail goes out in event order
    event: Event


def in_ticket_order(items: list[Planned], size: int) -> list[list[Planned]]:
    """Groups to attempt one after another: each ticket's deliveries in event order (its k-th
    in the k-th wave), different tickets side by side, at most `size` in a group."""
    chains: dict[str, list[Planned]] = {}
    for item in items:
        chains.setdefault(item.key, []).append(item)
    groups: list[list[Planned]] = []
    for k in range(max((len(chain) for chain in chains.values()), default=0)):
        wave = [chain[k] for chain in chains.values() if len(chain) > k]
        groups += [wave[i:i + size] for i in range(0, len(wave), size)]
    return groups


class Mailer:
    def __init__(self, db: Database, settings: Settings, transport: Transport, metrics: Metrics) -> None:
        self.db = db
        self.settings = settings
        self.transport = transport
        self.metrics = metrics
        self.composer = Composer(settings)
        self.ack_budget = AckBudget(
            settings.ack_burst, settings.ack_per_hour, settings.ack_per_host_burst, settings.ack_per_host_per_hour,
        )
        self._stopping = asyncio.Event()
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._stopping.clear()
        self._sweeper = asyncio.create_task(self._sweep_loop())

    async def stop(self) -> None:
        self._stopping.set()
        if self._sweeper is not None:
            await asyncio.gather(self._sweeper, return_exceptions=True)
            self._sweeper = None
        await self.transport.close()

    async def handle_batch(self, events: list[dict[str, Any]]) -> None:
        """Idempotent by event_id. Raises only for trouble of ours (the events come again)."""
        planned = await self.plan(events)
        for group in in_ticket_order(planned, self.settings.mail_concurrency):
            await self.attempt_group([(p.delivery_id, p.event) for p in group])

    async def handle(self, event: dict[str, Any]) -> None:
        await self.handle_batch([event])

    async def plan(self, payloads: list[dict[str, Any]]) -> list[Planned]:
        """One transaction for the batch: the pending deliveries of its events, in event order;
        for an event seen for the first time, its deliveries are created now. Payloads that
        are no event this mailer knows (or that mail nobody) are ignored."""
        parsed = (parse_event(p) for p in payloads if _may_mail(p))
        events = list({e.event_id: e for e in parsed if e is not None and e.type in MAILED}.values())
        if not events:
            return []
        ids = [e.event_id for e in events]
        async with self.db.unit_of_work() as session:
            # concurrent mailers with the same event: the second waits, then finds the rows
            async with driver_of(session) as driver:  # begins the session's transaction
                await driver.execute(_LOCK_EVENTS, sorted({_lock_key("event", str(i)) for i in ids}))
                rows = await driver.fetch(_PLANNED, ids)
            seen = {r["event_id"] for r in rows}
            pending = [(r["event_id"], r["id"]) for r in rows if r["status"] == DeliveryStatus.pending.value]
            new = [e for e, i in zip(events, ids) if i not in seen]
            if new:
                pending += await self._create_deliveries(session, new)
        by_event: dict[uuid.UUID, list[uuid.UUID]] = {}
        for event_id, delivery_id in pending:
            by_event.setdefault(event_id, []).append(delivery_id)
        return [
            Planned(delivery_id, str(e.ticket.id), e)
            for e, i in zip(events, ids) for delivery_id in by_event.get(i, [])
        ]

    async def _create_deliveries(
        self, session: AsyncSession, events: list[Event]
    ) -> list[tuple[uuid.UUID, uuid.UUID]]:
        ticket_ids = {e.ticket.id for e in events}
        async with driver_of(session) as driver:
            live = {row[0] for row in await driver.fetch(_LIVE, list(ticket_ids))}
        rows: list[dict[str, Any]] = []
        comments: dict[uuid.UUID, uuid.UUID | None] = {}
        counted: dict[str, int] = {}  # automatic mail planned in this batch, per address
        # the requesters in one query, held while they are looked up by key (the session's
        # identity map keeps only what is referenced): one query per event before
        requesters = list(await session.scalars(select(Customer).where(
            Customer.id.in_({e.ticket.requester_id for e in events if e.ticket.requester_id is not None}))))
        told = [(event, await recipients_for(session, event)) for event in events if event.ticket.id in live]
        sent = await sent_last_hour(session, [r for _, recipients in told for r in recipients])
        for event, recipients in told:
            event_id, ticket_id = event.event_id, event.ticket.id
            screened = await screen(
                session, recipients, mailboxes=self.settings.support_mailboxes,
                auto_per_hour=self.settings.auto_replies_per_hour, planned=counted, sent=sent,
            )
            screened = self._within_ack_budget(event, screened)
            for recipient, reason in screened.suppressed:
                self.metrics.mail_suppressed.labels(reason).inc()
                log.debug("event %s: no %s to %s (%s)", event_id, recipient.template, recipient.address, reason)
            mailbox = await self.composer.mailbox(session, event.ticket.group_id)
            comment = getattr(event, "comment", None)
            comments[event_id] = comment.id if comment is not None else None
            rows += [
                {
                    "id": uuid.uuid4(), "event_id": event_id, "ticket_id": ticket_id,
                    "recipient": r.address.strip().lower(), "template": r.template,
                    "message_id": new_message_id(mailbox.address),
                }
                for r in screened.accepted
            ]
        if not rows:
            return []
        # one statement on the session's driver: the deliveries, and the Message-IDs of those
        # that are new (the ORM's multi-row INSERTs were compiled anew for every batch size)
        async with driver_of(session) as driver:
            inserted = await driver.fetch(
                _PLAN, [r["id"] for r in rows], [r["event_id"] for r in rows], [r["ticket_id"] for r in rows],
                [r["recipient"] for r in rows], [r["template"] for r in rows], [r["message_id"] for r in rows],
                [uuid.uuid4() for _ in rows], [comments.get(r["event_id"]) for r in rows],
            )
        order = {row["id"]: n for n, row in enumerate(rows)}
        return [(r["event_id"], r["id"]) for r in sorted(inserted, key=lambda r: order[r["id"]])]

    def _within_ack_budget(self, event: Event, screened: Screened) -> Screened:
        """Acknowledgements of mail beyond the global or the sending host's budget are not sent."""
        acknowledges = isinstance(event, TicketCreated) or (
            isinstance(event, TriggerNotification) and event.template == TICKET_CREATED
        )
        if not acknowledges or event.via != "email":
            return screened
        accepted, suppressed = [], list(screened.suppressed)
        for recipient in screened.accepted:
            spent = self.ack_budget.take(event.sending_host) if recipient.template == TICKET_CREATED else None
            if spent is None:
                accepted.append(recipient)
            else:
                suppressed.append((recipient, f"ack_budget_{spent}"))
        return Screened(accepted, suppressed)

    async def attempt(self, delivery_id: uuid.UUID, event: Event | None = None) -> None:
        """Sends one pending delivery unless another worker holds it or it is already done."""
        await self.attempt_group([(delivery_id, event)])

    async def attempt_group(self, group: list[tuple[uuid.UUID, Event | None]]) -> None:
        """Sends the pending ones of these deliveries (not two of one ticket: they go out side by
        side) in one transaction: composed one by one (the session's queries), sent together,
        their outcomes written in one statement."""
        events = dict(group)
        async with self.db.unit_of_work() as session:
            rows = [r for r in await lock_deliveries(session, list(events))
                    if r.status == DeliveryStatus.pending]
            if not rows:
                return
            outcomes: dict[uuid.UUID, dict[str, Any]] = {}
            composed = []
            for row in rows:
                try:
                    composed.append((row, *await self.composer.compose(session, row, events.get(row.id))))
                except CannotCompose as exc:
                    outcomes[row.id] = self._failed(row, str(exc), row.attempts)
                except Exception as exc:  # a template or data bug of ours: visible, not a retry loop
                    log.exception("cannot compose delivery %s", row.id)
                    outcomes[row.id] = self._failed(row, f"cannot compose: {type(exc).__name__}: {exc}", row.attempts)
            sent = await asyncio.gather(*(self._send(row, message, sender) for row, message, sender in composed))
            outcomes.update((row.id, outcome) for (row, _, _), outcome in zip(composed, sent))
            async with driver_of(session) as driver:  # in the transaction `lock_deliveries` began
                await driver.execute(
                    _OUTCOME, list(outcomes), [o["attempts"] for o in outcomes.values()],
                    [o.get("status", DeliveryStatus.pending).value for o in outcomes.values()],
                    [o.get("sent_at") for o in outcomes.values()], [o.get("last_error") for o in outcomes.values()],
                )

    async def _send(self, delivery: Any, message: Message, sender: str) -> dict[str, Any]:
        """The row's new values after one attempt."""
        attempts = delivery.attempts + 1
        try:
            await self.transport.send(message, sender=sender, recipient=delivery.recipient)
        except PermanentFailure as exc:
            return self._failed(delivery, str(exc), attempts)
        except TemporaryFailure as exc:
            if attempts >= self.settings.mail_max_attempts:
                return self._failed(delivery, f"gave up after {attempts} attempts: {exc}", attempts)
            self.metrics.mail_deliveries.labels("retry").inc()
            log.warning("delivery %s to %s: %s (will retry)", delivery.message_id, delivery.recipient, exc)
            return {"attempts": attempts, "last_error": str(exc)[:2000]}
        self.metrics.mail_deliveries.labels("sent").inc()
        return {"attempts": attempts, "status": DeliveryStatus.sent, "sent_at": utcnow(), "last_error": None}

    def _failed(self, delivery: Any, error: str, attempts: int) -> dict[str, Any]:
        self.metrics.mail_deliveries.labels("failed").inc()
        log.error("delivery %s (%s to %s) failed: %s", delivery.message_id, delivery.template, delivery.recipient, error)
        return {"attempts": attempts, "status": DeliveryStatus.failed, "last_error": error[:2000]}

    async def sweep(self, limit: int = 100) -> int:
        """Attempts the pending deliveries whose time has come; returns how many were due."""
        async with self.db.unit_of_work() as session:
            due = list(await session.scalars(
                select(OutboundDelivery.id).where(
                    OutboundDelivery.status == DeliveryStatus.pending,
                    text(
                        "outbound_deliveries.created_at + make_interval(secs => CASE "
                        "WHEN outbound_deliveries.attempts = 0 THEN :grace "
                        "ELSE :base * (power(2, outbound_deliveries.attempts) - 1) END) <= now()"
                    ).bindparams(grace=FIRST_ATTEMPT_GRACE, base=self.settings.mail_retry_seconds),
                ).order_by(OutboundDelivery.created_at).limit(limit)
            ))
        size = self.settings.mail_concurrency
        for start in range(0, len(due), size):
            await self.attempt_group([(d, None) for d in due[start:start + size]])
        return len(due)

    async def _sweep_loop(self) -> None:
        interval = min(max(self.settings.mail_retry_seconds / 2, 0.1), 5.0)
        while not self._stopping.is_set():
            try:
                await self.sweep()
            except Exception:
                log.exception("mail retry sweep failed; trying again")
            try:
                await asyncio.wait_for(self._stopping.wait(), interval)
            except TimeoutError:
                pass
