"""Jobs that keep the desk tidy: solved tickets close, published events are pruned.

Each function is one batch in the caller's transaction, safe to run from several scheduler
processes at once (rows are claimed with SKIP LOCKED) and to run again (it picks up where
the last batch stopped).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.actor import Actor
from core.enums import AuthorType, TicketStatus
from core.events import OutboxEvent
from core.tickets.models import Ticket
from core.tickets.changes import ticket_changes


async def close_solved_tickets(session: AsyncSession, *, solved_before: datetime, limit: int = 200) -> int:
    """Solved tickets untouched since `solved_before` become closed (audited; the
    `status_changed` event sends the satisfaction survey). Returns how many were closed."""
    tickets = list(await session.scalars(
        select(Ticket)
        .where(
            Ticket.status == TicketStatus.solved, Ticket.solved_at < solved_before,
            Ticket.deleted_at.is_(None),
        )
        .order_by(Ticket.solved_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ))
    for ticket in tickets:
        await ticket_changes.set_status(
            session, ticket, TicketStatus.closed, Actor(AuthorType.system, None), via="auto_close",
        )
    return len(tickets)


async def prune_published_events(session: AsyncSession, *, published_before: datetime, limit: int = 5000) -> int:
    """Deletes outbox events published before `published_before`. Unpublished ones stay,
    however old: the relay still owes them to the broker. (Delivery records, which make
    redelivered events harmless, are kept.)"""
    doomed = (
        select(OutboxEvent.id)
        .where(OutboxEvent.published_at.is_not(None), OutboxEvent.published_at < published_before)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .scalar_subquery()
    )
    result = await session.execute(delete(OutboxEvent).where(OutboxEvent.id.in_(doomed)))
    return int(result.rowcount or 0)
