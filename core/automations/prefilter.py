"""Which open tickets an automation run needs to look at, from the automations' conditions, in
SQL: a superset of the tickets where some automation's conditions hold (the runner still checks
each condition on the ticket), plus every ticket an automation has marked (its mark goes when
its conditions stop holding). A condition that SQL cannot say as cheaply (text, comment times,
`changed`, whole hours) admits every ticket.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from enum import Enum
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, exists, false, or_, true

from core.automations.models import automation_marks
from core.enums import Channel, TicketPriority, TicketStatus, TicketType
from core.tickets.models import Ticket
from core.triggers.conditions import PRIORITY_ORDER
from core.triggers.runner import LoadedTrigger
from core.triggers.schemas import Condition

_ENUMS: dict[str, type[Enum]] = {
    "status": TicketStatus, "priority": TicketPriority, "type": TicketType, "channel": Channel,
}
_IDS = ("group_id", "assignee_id", "requester_id", "organization_id")
# time conditions on a column of the ticket: hours = (now - column) or (column - now)
_SINCE = {"hours_since_created": Ticket.created_at, "hours_since_updated": Ticket.updated_at,
          "hours_since_sla_breach": Ticket.sla_breach_at}


def _condition(c: Condition, now: datetime) -> ColumnElement[bool]:
    """True for every ticket where `c` may hold (exact where it can be, looser where not)."""
    field, op, value = c.field, c.operator, c.value
    if field in _ENUMS or field in _IDS:
        column = getattr(Ticket, field)
        try:
            value = None if value is None else _ENUMS[field](value) if field in _ENUMS else uuid.UUID(str(value))
        except ValueError:
            return true()
        if op == "is":
            return column.is_(None) if value is None else column == value
        if op == "is_not":
            return column.is_not(None) if value is None else column.is_distinct_from(value)
        if field == "priority" and op in ("less_than", "greater_than") and value is not None:
            rank = PRIORITY_ORDER[value.value]
            wanted = [p for p, n in PRIORITY_ORDER.items() if (n < rank if op == "less_than" else n > rank)]
            return column.in_([TicketPriority(p) for p in wanted]) if wanted else false()
        return true()
    if field == "tags" and isinstance(value, list | str):
        tags = [t.strip().lower() for t in (value if isinstance(value, list) else [value])]
        if op in ("contains", "includes_any"):
            return Ticket.tags.overlap(tags)
        if op in ("not_contains", "includes_none"):
            return ~Ticket.tags.overlap(tags)
        return true()
    hours = timedelta(hours=float(value)) if isinstance(value, int | float) and not isinstance(value, bool) else None
    if hours is not None and op in ("less_than", "greater_than"):
        if field in _SINCE:  # now - column  >  or  <  hours
            column = _SINCE[field]
            return column <= now - hours if op == "greater_than" else column >= now - hours
        if field == "hours_until_sla_breach":  # column - now  >  or  <  hours
            return Ticket.sla_breach_at >= now + hours if op == "greater_than" else Ticket.sla_breach_at <= now + hours
    return true()


def _conditions(automation: LoadedTrigger, now: datetime) -> ColumnElement[bool]:
    conditions = automation.conditions
    if not conditions.all and not conditions.any:
        return false()  # never matches (core/triggers/conditions.py: matches)
    every = [_condition(c, now) for c in conditions.all]
    some = [_condition(c, now) for c in conditions.any]
    return and_(true(), *every, or_(*some) if some else true())


def candidates(automations: Sequence[LoadedTrigger], now: datetime) -> ColumnElement[Any]:
    """Tickets some automation may act on, or has marked."""
    marked = exists().where(automation_marks.c.ticket_id == Ticket.id)
    return or_(marked, *(_conditions(a, now) for a in automations))
