"""SLA checks: first-reply targets from the active policies, one warning before each target
is missed, and the breaches.

A policy (see core/sla/schemas.py) selects tickets with its filter and gives minutes per
priority; the first active policy by position that matches an unanswered ticket sets its
`sla_breach_at` (creation + minutes) — for tickets from before per-ticket targets (which the
change path keeps now: core/sla/targets.py). Targets are derived data: setting them, and the
warning mark, leave `updated_at` alone. `mark_breaches` marks every kind of target.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import ColumnElement, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import events
from core.enums import AuthorType, TicketPriority, TicketStatus
from core.audit.service import audit_service
from core.sla.models import SlaPolicy, TicketSlaTarget
from core.sla.schemas import SlaFilter
from core.tickets.change import Change
from core.tickets.changes import ticket_changes
from core.tickets.models import Ticket
from core.tickets.service import snapshot
from core.triggers.runner import TRIGGER_ACTOR

log = logging.getLogger(__name__)

FIRST_REPLY = "first_reply_time"
AWAITING_REPLY = (TicketStatus.new, TicketStatus.open)
# tickets older than this get no target (a first start on an old database stays quiet), and
# targets missed longer ago than STALE are not announced any more
LOOKBACK = timedelta(days=30)
STALE = timedelta(days=1)


def _unanswered() -> list[ColumnElement[bool]]:
    """Unanswered and not yet warned: the predicate of `ix_tickets_sla_unanswered`, which
    both jobs' queries must imply for PostgreSQL to use that index."""
    return [
        Ticket.first_response_at.is_(None), Ticket.sla_warned_at.is_(None),
        Ticket.deleted_at.is_(None), Ticket.status.in_(AWAITING_REPLY),
    ]


def _matching(policy_filter: dict[str, Any]) -> list[ColumnElement[bool]] | None:
    """The policy's filter as conditions on tickets; None if it cannot be read."""
    try:
        rule = SlaFilter.model_validate(policy_filter or {})
    except ValidationError:
        return None
    conditions: list[ColumnElement[bool]] = []
    for name in ("priority", "type", "channel", "group_id"):
        values = getattr(rule, name)
        if values:
            conditions.append(getattr(Ticket, name).in_(values))
    if rule.tags:
        conditions.append(Ticket.tags.contains([t.strip().lower() for t in rule.tags]))
    return conditions


async def assign_first_reply_targets(session: AsyncSession, *, now: datetime) -> int:
    """Sets `sla_breach_at` on unanswered tickets that have none and a policy covers."""
    policies = await session.scalars(
        select(SlaPolicy).where(SlaPolicy.active.is_(True)).order_by(SlaPolicy.position, SlaPolicy.created_at)
    )
    assigned = 0
    for policy in policies:
        conditions = _matching(policy.filter)
        targets = (policy.metrics or {}).get(FIRST_REPLY) or {}
        if conditions is None or not isinstance(targets, dict):
            log.warning("SLA policy %s (%s) cannot be read; skipped", policy.id, policy.title)
            continue
        for priority, minutes in targets.items():
            try:
                level, delay = TicketPriority(priority), timedelta(minutes=int(minutes))
            except (ValueError, TypeError):
                continue
            result = await session.execute(
                update(Ticket)
                .where(
                    *_unanswered(), *conditions, Ticket.sla_breach_at.is_(None),
                    Ticket.priority == level, Ticket.created_at > now - LOOKBACK,
                    # tickets with targets of their own (core/sla/targets.py) are not this job's
                    ~exists().where(TicketSlaTarget.ticket_id == Ticket.id),
                )
                # a ticket taken by an earlier policy no longer matches `sla_breach_at IS NULL`
                .values(sla_breach_at=Ticket.created_at + delay, updated_at=Ticket.updated_at)
                .execution_options(synchronize_session=False)
            )
            assigned += int(result.rowcount or 0)
    return assigned


async def warn_before_breach(
    session: AsyncSession, *, now: datetime, warn_before: timedelta, limit: int = 200
) -> int:
    """One `sla_warning` event per target (first reply, next reply, resolution) due within
    `warn_before` (or just passed), and one per unanswered ticket whose `sla_breach_at` came from
    a policy job rather than targets of its own; the mailer sends it to the assignee, else the
    ticket's group."""
    warned = await _warn_targets(session, now=now, warn_before=warn_before, limit=limit)
    return warned + await _warn_tickets(session, now=now, warn_before=warn_before, limit=limit)


async def _warn_targets(session: AsyncSession, *, now: datetime, warn_before: timedelta, limit: int) -> int:
    """Running targets, each warned once (rows locked with SKIP LOCKED: several schedulers
    never warn twice); a target recomputed later keeps its mark."""
    targets = list(await session.scalars(
        select(TicketSlaTarget)
        .where(
            TicketSlaTarget.fulfilled_at.is_(None), TicketSlaTarget.breached_at.is_(None),
            TicketSlaTarget.paused_at.is_(None), TicketSlaTarget.warned_at.is_(None),
            TicketSlaTarget.target_at <= now + warn_before, TicketSlaTarget.target_at > now - STALE,
        )
        .order_by(TicketSlaTarget.target_at).limit(limit).with_for_update(skip_locked=True)
    ))
    if not targets:
        return 0
    tickets = {t.id: t for t in await session.scalars(
        select(Ticket).where(Ticket.id.in_({t.ticket_id for t in targets}))
    )}
    for target in targets:
        target.warned_at = now
        ticket = tickets[target.ticket_id]
        if ticket.deleted_at is not None or ticket.status in (TicketStatus.solved, TicketStatus.closed):
            continue
        events.emit(
            session, topic=events.TOPIC_SLA_WARNING, ticket=snapshot(ticket), metric=target.metric,
            breach_at=target.target_at.isoformat(), breached=target.target_at <= now,
        )
    await session.flush()
    return len(targets)


async def _warn_tickets(session: AsyncSession, *, now: datetime, warn_before: timedelta, limit: int) -> int:
    """Unanswered tickets without targets of their own (`assign_first_reply_targets`)."""
    tickets = list(await session.scalars(
        select(Ticket)
        .where(
            *_unanswered(), Ticket.sla_breach_at.is_not(None),
            Ticket.sla_breach_at <= now + warn_before, Ticket.sla_breach_at > now - STALE,
            ~exists().where(TicketSlaTarget.ticket_id == Ticket.id),
        )
        .order_by(Ticket.sla_breach_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
    ))
    for ticket in tickets:
        assert ticket.sla_breach_at is not None
        events.emit(
            session, topic=events.TOPIC_SLA_WARNING, ticket=snapshot(ticket), metric=FIRST_REPLY,
            breach_at=ticket.sla_breach_at.isoformat(), breached=ticket.sla_breach_at <= now,
        )
    if tickets:
        await session.execute(
            update(Ticket).where(Ticket.id.in_([t.id for t in tickets]))
            .values(sla_warned_at=now, updated_at=Ticket.updated_at)
            .execution_options(synchronize_session=False)
        )
    return len(tickets)


async def mark_breaches(session: AsyncSession, *, now: datetime, limit: int = 200) -> list[str]:
    """Running targets past due get their `breached_at`, an audit entry and an `sla_breached`
    event, once (rows locked with SKIP LOCKED: several schedulers never mark one twice).
    Returns the metric of each breach."""
    targets = list(await session.scalars(
        select(TicketSlaTarget)
        .where(
            TicketSlaTarget.fulfilled_at.is_(None), TicketSlaTarget.breached_at.is_(None),
            TicketSlaTarget.paused_at.is_(None), TicketSlaTarget.target_at <= now,
        )
        .order_by(TicketSlaTarget.target_at).limit(limit).with_for_update(skip_locked=True)
    ))
    if not targets:
        return []
    tickets = {t.id: t for t in await session.scalars(
        select(Ticket).where(Ticket.id.in_({t.ticket_id for t in targets}))
    )}
    for target in targets:
        target.breached_at = now
        ticket = tickets[target.ticket_id]
        audit_service.record(
            session, ticket_id=ticket.id, actor_type=AuthorType.system, actor_id=None, action="sla_breach",
            via="sla", changes={"metric": target.metric, "target_at": target.target_at.isoformat()},
        )
        if ticket.deleted_at is None:
            events.emit(
                session, topic=events.TOPIC_SLA_BREACHED, ticket=snapshot(ticket), metric=target.metric,
                target_at=target.target_at, breached_at=now, via="sla",
            )
    # the ticket's next breach is now its next running target (or none)
    running = (
        select(func.min(TicketSlaTarget.target_at)).where(
            TicketSlaTarget.ticket_id == Ticket.id, TicketSlaTarget.fulfilled_at.is_(None),
            TicketSlaTarget.breached_at.is_(None), TicketSlaTarget.paused_at.is_(None),
        ).scalar_subquery()
    )
    await session.flush()
    await session.execute(
        update(Ticket).where(Ticket.id.in_(list(tickets)))
        .values(sla_breach_at=running, updated_at=Ticket.updated_at)
        .execution_options(synchronize_session=False)
    )
    await _run_breach_triggers(session, targets, tickets)
    return [t.metric for t in targets]


async def _run_breach_triggers(
    session: AsyncSession, targets: list[TicketSlaTarget], tickets: dict[Any, Ticket],
) -> None:
    """Each breach is a change of its own (`event: sla_breached`, its `sla_metric`): triggers
    that ask for it act in this transaction (escalate, notify)."""
    for target in targets:
        ticket = tickets[target.ticket_id]
        if ticket.deleted_at is not None or ticket.status is TicketStatus.closed:
            continue
        await session.refresh(ticket)  # its new sla_breach_at, written above
        change = Change.of(ticket, TRIGGER_ACTOR, "sla")
        change.event, change.sla_metric = "sla_breached", target.metric
        await ticket_changes.settle(session, change)
