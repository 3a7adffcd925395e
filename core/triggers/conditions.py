"""Whether a trigger's conditions hold for a change: pure, no database.

`Facts` is what a condition can see: the ticket after the change (so far), every field that
changed in it (from its value before the change), the comment the change added, what made it.
Values are compared as plain JSON (ids as strings), text case-insensitively.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from core.enums import TicketPriority
from core.events import CommentFacts
from core.triggers.schemas import Condition, Conditions

PRIORITY_ORDER = {p.value: n for n, p in enumerate(TicketPriority)}


@dataclass(frozen=True)
class Facts:
    event: str  # created | updated | sla_breached | satisfaction_rated
    ticket: dict[str, Any]  # TicketOut as JSON
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # field -> (before, now)
    comment: CommentFacts | None = None
    via: str = "api"  # email | api | macro | trigger | automation
    requester_email: str = ""
    sla_metric: str | None = None  # the target an `sla_breached` change is about
    satisfaction_score: str | None = None  # the rating of a `satisfaction_rated` change
    # automations only: hours_since_created etc. (None when there is no such moment)
    hours: dict[str, float | None] = field(default_factory=dict)


def via_kind(via: str) -> str:
    """The `via` a condition sees, from the finer one audits record (`api:merge`, `macro:<id>`)."""
    head = via.split(":", 1)[0]
    return head if head in ("email", "api", "macro", "trigger") else "automation"


def _norm(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, (list, tuple)):
        return [_norm(v) for v in value]
    return str(value).strip().lower()


def actual(facts: Facts, name: str) -> Any:
    if name == "event":
        return facts.event
    if name == "via":
        return facts.via
    if name == "requester_email":
        return facts.requester_email
    if name == "sla_metric":
        return facts.sla_metric
    if name == "satisfaction_score":
        return facts.satisfaction_score
    if name == "requester_domain":
        return facts.requester_email.rpartition("@")[2]
    if name.startswith("comment_"):
        if facts.comment is None:
            return None
        return {
            "comment_text": facts.comment.body, "comment_visibility": facts.comment.visibility.value,
            "comment_author_type": facts.comment.author_type.value,
        }[name]
    return facts.ticket.get(name)


def _hours_hold(op: str, have: float | None, want: float) -> bool:
    """Time conditions: `is` compares whole hours (as a person reads "is 24 hours")."""
    if have is None:
        return False
    if op == "is":
        return int(have) == int(want)
    return have < want if op == "less_than" else have > want


def holds(condition: Condition, facts: Facts) -> bool:
    if condition.field.startswith("hours_"):
        return _hours_hold(condition.operator, facts.hours.get(condition.field), float(condition.value))
    op, want = condition.operator, _norm(condition.value)
    if op in ("changed", "changed_to", "changed_from"):
        change = facts.changes.get(condition.field)
        if change is None:
            return False
        before, now = (_norm(v) for v in change)
        if before == now:
            return False
        return op == "changed" or (now if op == "changed_to" else before) == want
    value = _norm(actual(facts, condition.field))
    if condition.field == "tags":
        tags = set(value or [])
        wanted = set(want) if isinstance(want, list) else {want}
        if op in ("contains", "includes_any"):
            return bool(tags & wanted)
        return not tags & wanted  # not_contains, includes_none
    if op == "is":
        return value == want
    if op == "is_not":
        return value != want
    if op in ("contains", "not_contains"):
        found = value is not None and want in value
        return found if op == "contains" else not found
    if op in ("less_than", "greater_than") and value in PRIORITY_ORDER and want in PRIORITY_ORDER:
        order = PRIORITY_ORDER[value] - PRIORITY_ORDER[want]
        return order < 0 if op == "less_than" else order > 0
    return False


def matches(conditions: Conditions, facts: Facts) -> bool:
    """Every `all` condition and, when there are `any` conditions, at least one of them.
    A trigger with no conditions at all never fires (an empty filter is a mistake, not 'always')."""
    if not conditions.all and not conditions.any:
        return False
    return all(holds(c, facts) for c in conditions.all) and (
        not conditions.any or any(holds(c, facts) for c in conditions.any)
    )


def fields_named(conditions: Iterable[Conditions]) -> set[str]:
    return {c.field for cs in conditions for c in (*cs.all, *cs.any)}
