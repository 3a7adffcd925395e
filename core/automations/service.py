"""Automations, run by the scheduler: each batch locks open tickets (`FOR UPDATE SKIP LOCKED`,
so several schedulers share the work) that some automation may act on (prefiltered in SQL from
their conditions: core/automations/prefilter.py), reads how long ago things happened to them, and lets
every active automation act where its conditions hold.

An automation acts on a ticket once: `automation_marks` remembers it, and the mark goes only
when the conditions stop holding, so it can act again when they hold once more. Acting is an
ordinary change through `TicketChangeService` (audited `via: automation`, events, triggers),
in a savepoint: a broken automation is skipped with a logged reason.
"""

from __future__ import annotations

import logging
import uuid
from datetime import datetime

from sqlalchemy import delete, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.automations.models import Automation, automation_marks
from core.automations.prefilter import candidates
from core.automations.schemas import TIME_FIELDS, AutomationConditions
from core.crud import Crud
from core.enums import TicketStatus
from core.tickets.change import Change
from core.tickets.changes import ticket_changes
from core.tickets.models import Ticket
from core.tickets.schemas import TicketOut
from core.triggers.conditions import Facts, matches
from core.triggers.runner import TRIGGER_ACTOR, LoadedTrigger, trigger_runner
from core.triggers.schemas import TriggerAction

log = logging.getLogger(__name__)

automation_crud: Crud[Automation] = Crud(Automation, "automation")

_HOURS = text("""
SELECT t.id,
  extract(epoch FROM :now - t.created_at) / 3600 AS hours_since_created,
  extract(epoch FROM :now - t.updated_at) / 3600 AS hours_since_updated,
  extract(epoch FROM :now - coalesce((SELECT max(a.created_at) FROM ticket_audit_logs a
          WHERE a.ticket_id = t.id AND a.changes ? 'status'), t.created_at)) / 3600 AS hours_since_status_change,
  extract(epoch FROM :now - (SELECT max(c.created_at) FROM ticket_comments c
          WHERE c.ticket_id = t.id AND c.author_type = 'customer')) / 3600 AS hours_since_requester_update,
  extract(epoch FROM :now - (SELECT max(c.created_at) FROM ticket_comments c
          WHERE c.ticket_id = t.id AND c.author_agent_id = t.assignee_id)) / 3600 AS hours_since_assignee_update,
  extract(epoch FROM t.sla_breach_at - :now) / 3600 AS hours_until_sla_breach,
  extract(epoch FROM :now - t.sla_breach_at) / 3600 AS hours_since_sla_breach,
  (SELECT email FROM customers WHERE id = t.requester_id) AS requester_email
FROM tickets t WHERE t.id = ANY(:ids)
""")


def _loaded(rows: list[Automation]) -> list[LoadedTrigger]:
    loaded = []
    for row in rows:
        try:
            loaded.append(LoadedTrigger(
                id=row.id, title=row.title, conditions=AutomationConditions.model_validate(row.conditions or {}),  # type: ignore[arg-type]
                actions=[TriggerAction.model_validate(a) for a in row.actions or []],
            ))
        except ValueError as exc:
            log.error("automation %s (%s) cannot be read and is skipped: %s", row.id, row.title, exc)
    return loaded


class AutomationRunner:
    async def run_batch(self, session: AsyncSession, *, now: datetime, after: uuid.UUID | None, limit: int) -> list[uuid.UUID]:
        """One batch of open tickets after `after` (by id); returns the ids it looked at."""
        automations = _loaded(list(await session.scalars(
            select(Automation).where(Automation.active.is_(True)).order_by(Automation.position, Automation.created_at)
        )))
        if not automations:
            return []
        query = select(Ticket).where(
            Ticket.deleted_at.is_(None), Ticket.status != TicketStatus.closed, candidates(automations, now),
        )
        if after is not None:
            query = query.where(Ticket.id > after)
        tickets = list(await session.scalars(query.order_by(Ticket.id).limit(limit).with_for_update(skip_locked=True)))
        if not tickets:
            return []
        hours = {row.id: row for row in (await session.execute(_HOURS, {"now": now, "ids": [t.id for t in tickets]})).all()}
        marks = {
            (r.automation_id, r.ticket_id) for r in (await session.execute(
                select(automation_marks).where(automation_marks.c.ticket_id.in_([t.id for t in tickets]))
            )).all()
        }
        for ticket in tickets:
            for automation in automations:
                await self.consider(session, ticket, automation, hours[ticket.id], (automation.id, ticket.id) in marks)
        return [t.id for t in tickets]

    async def consider(self, session: AsyncSession, ticket: Ticket, automation: LoadedTrigger, row: object, marked: bool) -> None:
        if ticket.status is TicketStatus.closed:  # closed by an automation before this one
            return
        facts = Facts(
            event="updated", ticket=TicketOut.model_validate(ticket).model_dump(mode="json"), via="automation",
            requester_email=getattr(row, "requester_email") or "",
            hours={name: (float(v) if (v := getattr(row, name)) is not None else None) for name in TIME_FIELDS},
        )
        holds = matches(automation.conditions, facts)
        key = (automation_marks.c.automation_id == automation.id, automation_marks.c.ticket_id == ticket.id)
        if not holds:
            if marked:
                await session.execute(delete(automation_marks).where(*key))
            return
        if marked:
            return
        await session.execute(
            insert(automation_marks).values(automation_id=automation.id, ticket_id=ticket.id).on_conflict_do_nothing()
        )
        change = Change.of(ticket, TRIGGER_ACTOR, "automation")
        try:
            async with session.begin_nested():
                await trigger_runner.act(session, change, automation, ticket_changes.apply_update, kind="automation")
        except Exception as exc:  # a broken automation must not stop the others
            log.warning("automation %s (%s) skipped on ticket #%s: %s", automation.id, automation.title, ticket.number, exc)
            await session.refresh(ticket)
            return
        await ticket_changes.settle(session, change)


automation_runner = AutomationRunner()
