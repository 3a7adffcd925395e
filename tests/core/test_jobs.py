"""Scheduled jobs against real PostgreSQL: auto-close of solved tickets, outbox pruning."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, select

from core.audit.models import TicketAuditLog
from core.clock import utcnow
from core.config import Settings
from core.customers.service import customer_service
from core.db import Database
from core.enums import AuthorType, Channel, TicketStatus
from core.events import TOPIC_STATUS_CHANGED, OutboxEvent
from core.jobs.scheduler import Jobs
from core.metrics import Metrics
from core.tickets.models import Ticket
from core.tickets.service import ticket_service


def settings(database_url: str, tmp_path: Path, **overrides: object) -> Settings:
    return Settings(database_url=database_url, data_dir=tmp_path, auto_close_after_hours=24, **overrides)  # type: ignore[arg-type]


async def ticket_in(db: Database, status: TicketStatus, *, solved_hours_ago: float | None = None) -> uuid.UUID:
    tag = uuid.uuid4().hex[:8]
    async with db.unit_of_work() as session:
        customer = await customer_service.find_or_create(session, email=f"{tag}@jobs.test", name="Jobs")
        ticket = await ticket_service.create(
            session, subject=f"jobs {tag}", description="d", requester_id=customer.id,
            channel=Channel.api, actor_type=AuthorType.system, actor_id=None, via="test",
        )
        await ticket_service.set_status(
            session, ticket, status, actor_type=AuthorType.system, actor_id=None, via="test"
        )
        if solved_hours_ago is not None:
            ticket.solved_at = utcnow() - timedelta(hours=solved_hours_ago)
        return ticket.id


async def statuses(db: Database, ids: list[uuid.UUID]) -> list[TicketStatus]:
    async with db.unit_of_work() as session:
        found = {t.id: t.status for t in await session.scalars(select(Ticket).where(Ticket.id.in_(ids)))}
    return [found[i] for i in ids]


async def test_solved_tickets_close_after_the_configured_time_and_nothing_else_does(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    old = await ticket_in(db, TicketStatus.solved, solved_hours_ago=30)
    recent = await ticket_in(db, TicketStatus.solved, solved_hours_ago=2)
    pending = await ticket_in(db, TicketStatus.pending)
    jobs = Jobs(db, settings(database_url, tmp_path), Metrics())

    assert await jobs.run("auto_close") >= 1
    assert await statuses(db, [old, recent, pending]) == [TicketStatus.closed, TicketStatus.solved, TicketStatus.pending]
    async with db.unit_of_work() as session:
        audit = list(await session.scalars(select(TicketAuditLog).where(
            TicketAuditLog.ticket_id == old, TicketAuditLog.via == "auto_close")))
        events = list(await session.scalars(select(OutboxEvent).where(
            OutboxEvent.key == str(old), OutboxEvent.topic == TOPIC_STATUS_CHANGED)))
    assert [a.changes for a in audit] == [{"status": {"from": "solved", "to": "closed"}}]
    assert audit[0].actor_type is AuthorType.system
    closing = [e for e in events if e.payload.get("previous_status") == "solved"]
    assert len(closing) == 1 and closing[0].payload["ticket"]["status"] == "closed"

    assert await jobs.run("auto_close") == 0  # nothing left to do: a second run changes nothing


async def test_two_schedulers_at_once_close_each_ticket_once(db: Database, database_url: str, tmp_path: Path) -> None:
    ids = [await ticket_in(db, TicketStatus.solved, solved_hours_ago=48) for _ in range(12)]
    other = Database(database_url, pool_size=3)
    try:
        await asyncio.gather(
            Jobs(db, settings(database_url, tmp_path), Metrics()).run("auto_close"),
            Jobs(other, settings(database_url, tmp_path), Metrics()).run("auto_close"),
        )
    finally:
        await other.dispose()
    assert await statuses(db, ids) == [TicketStatus.closed] * len(ids)
    async with db.unit_of_work() as session:
        closings = await session.scalar(select(func.count()).select_from(TicketAuditLog).where(
            TicketAuditLog.ticket_id.in_(ids), TicketAuditLog.via == "auto_close"))
    assert closings == len(ids)


async def test_published_events_are_pruned_after_retention_and_unpublished_ones_never(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    now = utcnow()
    key = str(uuid.uuid4())
    rows = {
        "old published": OutboxEvent(topic="t", key=key, payload={}, created_at=now - timedelta(days=9),
                                     published_at=now - timedelta(days=9)),
        "old unpublished": OutboxEvent(topic="t", key=key, payload={}, created_at=now - timedelta(days=9)),
        "recent published": OutboxEvent(topic="t", key=key, payload={}, created_at=now - timedelta(hours=1),
                                        published_at=now - timedelta(hours=1)),
    }
    async with db.unit_of_work() as session:
        session.add_all(rows.values())
    ids = {name: row.id for name, row in rows.items()}
    metrics = Metrics()
    jobs = Jobs(db, settings(database_url, tmp_path, outbox_retention_hours=24 * 7), metrics)

    assert await jobs.run("prune_outbox") >= 1
    async with db.unit_of_work() as session:
        left = set(await session.scalars(select(OutboxEvent.id).where(OutboxEvent.key == key)))
    assert left == {ids["old unpublished"], ids["recent published"]}
    assert b'helpdesk_job_items_total{job="prune_outbox"}' in metrics.render()
