"""From the words a person typed to the ids the index holds: `group:"Level 2"` ▸ that group's id.

Shared by the backends: documents carry ids (so renaming a group or an organization changes no
document), and qualifiers naming people, groups or organizations are looked up here, once per
query. A name that matches nothing matches no ticket, and a warning says so.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass

import asyncpg

from search.query import PRIORITY_ORDER, Match, Query, Range, Text

PRIORITY_RANK = {p.value: i for i, p in enumerate(PRIORITY_ORDER)}
# qualifier ▸ the document field it filters
FIELDS = {
    "status": "status", "priority": "priority", "type": "type", "channel": "channel", "tags": "tags",
    "assignee": "assignee_id", "group": "group_id", "requester": "requester_id",
    "organization": "organization_id",
}
DATE_FIELDS = {"created": "created_at", "updated": "updated_at", "solved": "solved_at"}
Value = str | int | uuid.UUID | None


@dataclass(frozen=True)
class Filter:
    """`field` (a document field from `FIELDS`) is one of `values`, or none of them if negated."""

    field: str
    values: tuple[Value, ...]
    negated: bool = False


@dataclass(frozen=True)
class DateFilter:
    field: str  # from DATE_FIELDS
    op: str
    value: object  # datetime
    negated: bool = False


@dataclass(frozen=True)
class Resolved:
    text: tuple[Text, ...]
    filters: tuple[Filter, ...]
    dates: tuple[DateFilter, ...]
    warnings: tuple[str, ...]

    @property
    def has_text(self) -> bool:
        return any(not t.negated for t in self.text)


_LOOKUPS = {
    "assignee": "SELECT id FROM agents WHERE lower(email) = ANY($1::text[])",
    "requester": "SELECT id FROM customers WHERE email = ANY($1::text[])",
    "group": "SELECT id FROM groups WHERE lower(name) = ANY($1::text[])",
    "organization": (
        "SELECT id FROM organizations WHERE lower(name) = ANY($1::text[])"
        " OR domains && $1::text[]"
    ),
}


async def resolve(connection: asyncpg.Connection, query: Query, *, viewer_id: uuid.UUID | None) -> Resolved:
    warnings = list(query.warnings)
    filters = [await _resolve_match(connection, m, viewer_id, warnings) for m in query.matches]
    dates = tuple(_date(r) for r in query.ranges)
    return Resolved(query.text, tuple(filters), dates, tuple(warnings))


async def _resolve_match(
    connection: asyncpg.Connection, match: Match, viewer_id: uuid.UUID | None, warnings: list[str]
) -> Filter:
    field = FIELDS[match.field]
    if match.field == "priority":
        return Filter(field, tuple(PRIORITY_RANK[v] for v in match.values if v), match.negated)
    if match.field not in _LOOKUPS:
        return Filter(field, match.values, match.negated)
    values: list[Value] = [None] if None in match.values else []
    names = [v.lower() for v in match.values if v is not None]
    if match.field == "assignee" and "me" in names:
        names.remove("me")
        values.append(viewer_id)
    if names:
        found = [row["id"] for row in await connection.fetch(_LOOKUPS[match.field], names)]
        if not found:
            warnings.append(f"no {match.field} matches {', '.join(names)}")
        values += found
    return Filter(field, tuple(values), match.negated)


def _date(r: Range) -> DateFilter:
    return DateFilter(DATE_FIELDS[r.field], r.op, r.value, r.negated)
