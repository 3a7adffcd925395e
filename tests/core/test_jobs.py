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


# ---- SLA ---------------------------------------------------------------------------------

async def unanswered(db: Database, *, priority: str, minutes_ago: float, group_id: uuid.UUID | None = None,
                     answered: bool = False) -> uuid.UUID:
    from core.enums import TicketPriority
    tag = uuid.uuid4().hex[:8]
    async with db.unit_of_work() as session:
        customer = await customer_service.find_or_create(session, email=f"{tag}@sla.test", name="Sla")
        ticket = await ticket_service.create(
            session, subject=f"sla {tag}", description="d", requester_id=customer.id, channel=Channel.email,
            actor_type=AuthorType.system, actor_id=None, via="test", group_id=group_id,
            fields={"priority": TicketPriority(priority)},
        )
        await session.flush()
        ticket.created_at = utcnow() - timedelta(minutes=minutes_ago)
        if answered:
            ticket.first_response_at = utcnow()
        return ticket.id


async def sla_state(db: Database, ticket_id: uuid.UUID) -> tuple[object, object, list[dict]]:
    async with db.unit_of_work() as session:
        ticket = await session.get(Ticket, ticket_id)
        warnings = [e.payload for e in await session.scalars(select(OutboxEvent).where(
            OutboxEvent.key == str(ticket_id), OutboxEvent.topic == "notifications.ticket.sla_warning"))]
        return ticket.sla_breach_at, ticket.sla_warned_at, warnings


async def test_first_reply_targets_and_one_warning_before_the_breach(
    db: Database, database_url: str, tmp_path: Path
) -> None:
    from core.groups.models import Group
    from core.sla.models import SlaPolicy

    async with db.unit_of_work() as session:
        group = Group(name=f"SLA {uuid.uuid4().hex[:6]}")
        session.add(group)
        await session.flush()
        group_id = group.id
        # position 0 is for this group only and wins over the general policy below it
        session.add_all([
            SlaPolicy(title="vip", position=0, filter={"group_id": [str(group_id)]},
                      metrics={"first_reply_time": {"urgent": 30}}),
            SlaPolicy(title="general", position=1, filter={"priority": ["urgent", "high"]},
                      metrics={"first_reply_time": {"urgent": 120, "high": 600}}),
        ])
    vip = await unanswered(db, priority="urgent", minutes_ago=10, group_id=group_id)  # breach in 20 min
    soon = await unanswered(db, priority="urgent", minutes_ago=100)  # general: breach in 20 min
    later = await unanswered(db, priority="high", minutes_ago=10)  # breach in 590 min
    uncovered = await unanswered(db, priority="normal", minutes_ago=500)  # no policy for normal
    answered = await unanswered(db, priority="urgent", minutes_ago=100, answered=True)
    jobs = Jobs(db, settings(database_url, tmp_path, sla_warning_minutes=30), Metrics())
    try:
        await jobs.run("sla_targets")
        await jobs.run("sla_warnings")

        for ticket_id, target in ((vip, 30), (soon, 120)):
            breach_at, warned_at, warnings = await sla_state(db, ticket_id)
            async with db.unit_of_work() as session:
                created = (await session.get(Ticket, ticket_id)).created_at
            assert breach_at == created + timedelta(minutes=target)
            assert warned_at is not None and len(warnings) == 1
            assert warnings[0]["metric"] == "first_reply_time" and warnings[0]["breached"] is False
        breach_at, warned_at, warnings = await sla_state(db, later)
        assert breach_at is not None and warned_at is None and warnings == []
        assert (await sla_state(db, uncovered))[0] is None
        assert (await sla_state(db, answered))[0] is None

        await jobs.run("sla_targets")
        await jobs.run("sla_warnings")  # a second run warns nobody twice
        assert [len((await sla_state(db, t))[2]) for t in (vip, soon, later)] == [1, 1, 0]
    finally:
        async with db.unit_of_work() as session:  # other tests share this database
            for policy in await session.scalars(select(SlaPolicy).where(SlaPolicy.title.in_(["vip", "general"]))):
                await session.delete(policy)
