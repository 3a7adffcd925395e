"""The automations' SQL prefilter: never leaves out a ticket whose conditions hold (checked
against the runner's own evaluation on real rows), and leaves out the rest where it can."""

from __future__ import annotations

import itertools
import uuid
from datetime import timedelta

from sqlalchemy import select, update

from core.automations.prefilter import _conditions
from core.automations.schemas import TIME_FIELDS, AutomationConditions
from core.automations.service import _HOURS
from core.clock import utcnow
from core.customers.service import customer_service
from core.db import Database
from core.enums import AuthorType, Channel, TicketPriority, TicketStatus
from core.tickets.models import Ticket
from core.tickets.schemas import TicketOut
from core.tickets.service import ticket_service
from core.triggers.conditions import Facts, matches
from core.triggers.runner import LoadedTrigger

STATUSES = (TicketStatus.new, TicketStatus.open, TicketStatus.pending, TicketStatus.on_hold)
PRIORITIES = tuple(TicketPriority)


def condition_sets(tag: str) -> list[dict]:
    c = lambda f, o, v=None: {"field": f, "operator": o, "value": v}  # noqa: E731
    singles = [
        c("status", "is", "pending"), c("status", "is_not", "new"), c("priority", "greater_than", "normal"),
        c("priority", "less_than", "high"), c("priority", "is", "urgent"), c("type", "is", None),
        c("type", "is_not", None), c("assignee_id", "is", None), c("group_id", "is_not", None),
        c("tags", "contains", tag), c("tags", "includes_none", [tag]), c("tags", "includes_any", [tag, "x"]),
        c("hours_since_created", "greater_than", 24), c("hours_since_created", "less_than", 5),
        c("hours_since_created", "is", 30), c("hours_since_updated", "greater_than", 1.5),
        c("hours_until_sla_breach", "less_than", 2), c("hours_until_sla_breach", "greater_than", 0.5),
        c("hours_since_sla_breach", "greater_than", 1), c("hours_since_status_change", "greater_than", 2),
        c("subject", "contains", "printer"), c("channel", "is", "api"),
    ]
    sets = [{"all": [s]} for s in singles]
    sets += [{"all": [a, b]} for a, b in itertools.combinations(singles[::3], 2)]
    sets += [{"any": [a, b]} for a, b in itertools.combinations(singles[1::4], 2)]
    sets += [{"all": [singles[0]], "any": [singles[12], singles[16]]}]
    return sets


async def test_the_prefilter_keeps_every_ticket_an_automation_may_act_on(db: Database) -> None:
    tag = f"pf{uuid.uuid4().hex[:8]}"
    now = utcnow()
    ids = []
    async with db.unit_of_work() as session:
        customer = await customer_service.find_or_create(session, email=f"{tag}@prefilter.test", name="P")
        for n in range(24):
            ticket = await ticket_service.create(
                session, subject=f"printer {tag}" if n % 3 else f"fax {tag}", description="d",
                requester_id=customer.id, channel=Channel.api if n % 2 else Channel.email,
                actor_type=AuthorType.system, actor_id=None, via="test", tags=[tag] if n % 4 == 0 else [],
                fields={"priority": PRIORITIES[n % 4]},
            )
            await session.flush()
            ids.append(ticket.id)
            await session.execute(update(Ticket).where(Ticket.id == ticket.id).values(
                status=STATUSES[n % 4], created_at=now - timedelta(hours=n * 3 + 0.5),
                updated_at=now - timedelta(hours=n % 5), type="incident" if n % 5 == 0 else None,
                sla_breach_at=None if n % 3 == 0 else now + timedelta(hours=(n % 7) - 3),
            ))
    async with db.unit_of_work() as session:
        tickets = list(await session.scalars(select(Ticket).where(Ticket.id.in_(ids))))
        hours = {r.id: r for r in (await session.execute(_HOURS, {"now": now, "ids": ids})).all()}
        narrowed = 0
        for raw in condition_sets(tag):
            automation = LoadedTrigger(uuid.uuid4(), "a", AutomationConditions.model_validate(raw), [])  # type: ignore[arg-type]
            kept = set(await session.scalars(
                select(Ticket.id).where(Ticket.id.in_(ids), _conditions(automation, now))
            ))
            for ticket in tickets:
                row = hours[ticket.id]
                facts = Facts(
                    event="updated", ticket=TicketOut.model_validate(ticket).model_dump(mode="json"), via="automation",
                    requester_email=row.requester_email or "",
                    hours={f: (float(v) if (v := getattr(row, f)) is not None else None) for f in TIME_FIELDS},
                )
                if matches(automation.conditions, facts):
                    assert ticket.id in kept, (raw, ticket.id)
            narrowed += len(kept) < len(ids)
        assert narrowed >= len(condition_sets(tag)) // 2  # most conditions say something SQL can use
