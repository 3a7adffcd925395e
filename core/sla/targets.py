"""A ticket's SLA targets, kept up to date by every change (called from the change path).

- The policy is the first active one, by position, whose filter matches the ticket; its minutes
  for the ticket's priority give the targets. They are set when the ticket is created and
  recomputed when its priority, group, type, channel or tags change.
- `first_reply_time` runs from creation to the first public agent comment.
- `next_reply_time` starts at each public customer comment that follows an agent's public
  reply, and ends at the next public agent comment.
- `resolution_time` runs from creation to solved; it is paused while the ticket is pending or
  on hold (the open minutes spent paused move it on) and runs again if the ticket is reopened.
- `sla_breach_at` on the ticket is the earliest running target.
Breaches are marked by the scheduler (core/jobs/sla.py).
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.clock import utcnow
from core.db import process_cache
from core.enums import AuthorType, TicketStatus, Visibility
from core.models_base import ByVersion, active_rows_version
from core.sla.hours import BusinessHours, add_minutes, minutes_between
from core.sla.models import SlaPolicy, TicketSlaTarget
from core.sla.schemas import SlaFilter
from core.tickets.change import Change
from core.tickets.models import Ticket

log = logging.getLogger(__name__)

FIRST_REPLY, NEXT_REPLY, RESOLUTION = "first_reply_time", "next_reply_time", "resolution_time"
FILTERED = frozenset({"priority", "group_id", "type", "channel", "tags"})
PAUSED = (TicketStatus.pending, TicketStatus.on_hold)
DONE = (TicketStatus.solved, TicketStatus.closed)
_CACHE = "helpdesk.sla_policies"


@dataclass(frozen=True)
class Policy:
    id: uuid.UUID
    filter: SlaFilter
    metrics: dict[str, dict[str, int]]
    hours: BusinessHours | None

    def applies(self, ticket: Ticket) -> bool:
        f = self.filter
        return all((
            not f.priority or ticket.priority in f.priority,
            not f.type or ticket.type in f.type,
            not f.channel or ticket.channel in f.channel,
            not f.group_id or ticket.group_id in f.group_id,
            not f.tags or set(t.strip().lower() for t in f.tags) <= set(ticket.tags),
        ))

    def minutes(self, metric: str, ticket: Ticket) -> int | None:
        return (self.metrics.get(metric) or {}).get(ticket.priority.value)


ACTIVE_POLICIES_VERSION = active_rows_version(SlaPolicy.__tablename__)  # read by ingest once per batch


async def policies(session: AsyncSession) -> list[Policy]:
    """The active policies, read once per session."""
    cached = session.info.get(_CACHE)
    if cached is None:
        cached = session.info[_CACHE] = await _read_policies(session)
    return cast(list[Policy], cached)


async def policies_at(session: AsyncSession, version: str) -> list[Policy]:
    """The active policies, known by their version (`ACTIVE_POLICIES_VERSION`, read by the
    caller): read from the database only when this process has not seen that version. (Read
    after a newer edit committed, they are remembered under the older version: the edit raced
    the change, and the next batch reads the newer version.)"""
    known: ByVersion[list[Policy]] = process_cache(session, "sla_policies", ByVersion)
    cached = known.get(version)
    if cached is None:
        cached = await _read_policies(session)
        known.remember(version, cached)
    session.info[_CACHE] = cached
    return cached


async def _read_policies(session: AsyncSession) -> list[Policy]:
    found = []
    rows = await session.scalars(
        select(SlaPolicy).where(SlaPolicy.active.is_(True)).order_by(SlaPolicy.position, SlaPolicy.created_at)
    )
    for row in rows:
        try:
            found.append(Policy(
                row.id, SlaFilter.model_validate(row.filter or {}), dict(row.metrics or {}),
                BusinessHours.model_validate(row.business_hours) if row.business_hours else None,
            ))
        except ValidationError as exc:
            log.error("SLA policy %s (%s) cannot be read and is skipped: %s", row.id, row.title, exc)
    return found


def due(target: TicketSlaTarget, hours: BusinessHours | None) -> datetime:
    return add_minutes(target.started_at, target.minutes + target.paused_minutes, hours)


class SlaTargets:
    async def on_change(self, session: AsyncSession, change: Change) -> None:
        """Brings the ticket's targets and `sla_breach_at` in line with the change."""
        ticket, now = change.ticket, utcnow()
        changes = change.changes()
        found = await policies(session)
        policy = next((p for p in found if p.applies(ticket)), None)
        if policy is None and change.event == "created":
            return  # a new ticket no policy covers has no targets: no query
        comment = change.comment if change.event != "created" else None
        answered = comment is not None and comment.visibility is Visibility.public and comment.author_type is AuthorType.agent
        if policy is None and not answered and not changes.keys() & (FILTERED | {"status"}):
            # without a policy in force only an agent's answer, a status or a filtered field can
            # move a target the ticket already has (a customer's reply starts one only under a
            # policy): nothing to read
            return
        targets = list(await session.scalars(
            select(TicketSlaTarget).where(TicketSlaTarget.ticket_id == ticket.id)
            .order_by(TicketSlaTarget.started_at)
        ))
        if not targets and policy is None:
            return  # the common case without SLAs: one query, nothing else
        hours_of = {p.id: p.hours for p in found}
        running = {t.metric: t for t in targets if t.fulfilled_at is None}
        if change.event == "created":
            for metric in (FIRST_REPLY, RESOLUTION):
                self._start(session, ticket, policy, metric, ticket.created_at or now, running)
        elif changes.keys() & FILTERED:
            await self._retarget(session, ticket, policy, running)
        if comment is not None and comment.visibility is Visibility.public:
            if comment.author_type is AuthorType.agent:
                for metric in (FIRST_REPLY, NEXT_REPLY):
                    if metric in running:
                        running.pop(metric).fulfilled_at = now
            elif comment.author_type is AuthorType.customer and ticket.first_response_at is not None:
                self._start(session, ticket, policy, NEXT_REPLY, now, running)
        if "status" in changes:
            self._status(ticket, targets, running, hours_of, now)
        await session.flush()
        ticket.sla_breach_at = min(
            (t.target_at for t in running.values() if t.paused_at is None and t.breached_at is None), default=None,
        )

    def _start(
        self, session: AsyncSession, ticket: Ticket, policy: Policy | None, metric: str, start: datetime,
        running: dict[str, TicketSlaTarget],
    ) -> None:
        minutes = policy.minutes(metric, ticket) if policy else None
        if policy is None or minutes is None or metric in running:
            return
        target = TicketSlaTarget(
            id=uuid.uuid4(), ticket_id=ticket.id, policy_id=policy.id, metric=metric, minutes=minutes,
            started_at=start, paused_minutes=0.0, target_at=add_minutes(start, minutes, policy.hours),
        )
        session.add(target)
        running[metric] = target

    async def _retarget(
        self, session: AsyncSession, ticket: Ticket, policy: Policy | None, running: dict[str, TicketSlaTarget],
    ) -> None:
        """Another priority, group or filtered field: the running targets follow the policy now in force."""
        for metric, target in list(running.items()):
            minutes = policy.minutes(metric, ticket) if policy else None
            if minutes is None or policy is None:  # no policy asks for it any more
                running.pop(metric)
                if target.breached_at is None:
                    await session.delete(target)
                else:  # a breach stays on record; the target stops running
                    target.fulfilled_at, target.paused_at = utcnow(), None
                continue
            if target.breached_at is None:
                target.policy_id, target.minutes = policy.id, minutes
                target.target_at = due(target, policy.hours)
        if policy is not None and ticket.first_response_at is None:
            self._start(session, ticket, policy, FIRST_REPLY, ticket.created_at, running)
        if policy is not None and ticket.status not in DONE:
            self._start(session, ticket, policy, RESOLUTION, ticket.created_at, running)

    def _status(
        self, ticket: Ticket, targets: list[TicketSlaTarget], running: dict[str, TicketSlaTarget],
        hours_of: dict[uuid.UUID, BusinessHours | None], now: datetime,
    ) -> None:
        resolution = running.get(RESOLUTION)
        if ticket.status in DONE:
            if resolution is not None:
                resolution.fulfilled_at = now
                running.pop(RESOLUTION)
            return
        if resolution is None:  # reopened: the last resolution target runs again
            ended = [t for t in targets if t.metric == RESOLUTION and t.fulfilled_at is not None]
            if not ended:
                return
            resolution = ended[-1]
            resolution.fulfilled_at = None
            running[RESOLUTION] = resolution
        hours = hours_of.get(resolution.policy_id) if resolution.policy_id else None
        if ticket.status in PAUSED and resolution.paused_at is None:
            resolution.paused_at = now
        elif ticket.status not in PAUSED and resolution.paused_at is not None:
            resolution.paused_minutes += minutes_between(resolution.paused_at, now, hours)
            resolution.paused_at = None
            resolution.target_at = due(resolution, hours)


sla_targets = SlaTargets()


async def ticket_sla(session: AsyncSession, ticket: Ticket) -> list[TicketSlaTarget]:
    return list(await session.scalars(
        select(TicketSlaTarget).where(TicketSlaTarget.ticket_id == ticket.id)
        .order_by(TicketSlaTarget.started_at, TicketSlaTarget.metric)
    ))


async def compliance(
    session: AsyncSession, *, start: datetime, end: datetime, group_id: uuid.UUID | None = None,
    policy_id: uuid.UUID | None = None,
) -> dict[str, dict[str, Any]]:
    """Per metric, of the targets started in [start, end): achieved, breached, active, % achieved."""
    t = TicketSlaTarget
    query = (
        select(
            t.metric,
            func.count().filter(t.fulfilled_at.is_not(None), t.breached_at.is_(None)),
            func.count().filter(t.breached_at.is_not(None)),
            func.count().filter(t.fulfilled_at.is_(None), t.breached_at.is_(None)),
        )
        .join(Ticket, Ticket.id == t.ticket_id)
        .where(t.started_at >= start, t.started_at < end, Ticket.deleted_at.is_(None))
        .group_by(t.metric)
    )
    if group_id is not None:
        query = query.where(Ticket.group_id == group_id)
    if policy_id is not None:
        query = query.where(t.policy_id == policy_id)
    result = {}
    for metric, achieved, breached, active in (await session.execute(query)).all():
        decided = achieved + breached
        result[metric] = {
            "achieved": achieved, "breached": breached, "active": active,
            "percent_achieved": round(100 * achieved / decided, 1) if decided else None,
        }
    return result
