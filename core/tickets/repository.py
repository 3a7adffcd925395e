"""The ticket list queries: filters with several values, sorts, keyset pages.

Pages are read with the asyncpg driver under the request's session (no ORM objects: a page
of tickets is the API's hottest list). Column names come from the fixed tables below, values
are always parameters."""

from __future__ import annotations

import enum
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit.models import TicketAuditLog
from core.db import driver_of
from core.errors import Conflict
from core.pagination import Cursor, keyset, page_of
from core.tickets.models import Ticket
from core.tickets.schemas import TicketOut
from core.tickets.views import VIEW_COLUMNS, ticket_from_row

_SELECT = f"SELECT {', '.join(c.key for c in VIEW_COLUMNS)}"

# filterable column ▸ the array type several values are compared with
FILTERS: Mapping[str, str] = {
    "status": "ticket_status[]", "priority": "ticket_priority[]", "type": "ticket_type[]",
    "channel": "ticket_channel[]", "group_id": "uuid[]", "requester_id": "uuid[]",
    "assignee_id": "uuid[]", "organization_id": "uuid[]", "external_id": "text[]",
}
# sort ▸ its SQL key ascending and descending; tickets without an SLA target come last both ways
SORTS: Mapping[str, tuple[str, str]] = {
    "created_at": ("created_at", "created_at"),
    "updated_at": ("updated_at", "updated_at"),
    "number": ("number", "number"),
    "priority": ("priority", "priority"),
    "status": ("status", "status"),
    "sla_breach_at": (
        "COALESCE(sla_breach_at, 'infinity'::timestamptz)",
        "COALESCE(sla_breach_at, '-infinity'::timestamptz)",
    ),
}
SORT_CHOICES = tuple(name for column in SORTS for name in (column, f"-{column}"))


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, enum.Enum) else value


async def ticket_page(
    session: AsyncSession,
    *,
    limit: int,
    cursor: Cursor | None = None,
    filters: Mapping[str, Sequence[Any] | Any] | None = None,
    tags: Sequence[str] = (),
    sort: str = "-created_at",
) -> tuple[list[TicketOut], Cursor | None]:
    """Keyset-paginated on (sort key, id): stable while tickets arrive or change.

    `filters` maps a column to one value or several (any of them matches); `tags` must all be
    present; `sort` is a key of `SORTS`, `-` first for descending. A cursor made for another
    sort raises `BadCursor`."""
    column = sort.lstrip("-")
    if column not in SORTS:
        raise ValueError(f"cannot sort by {sort!r}")
    descending = sort.startswith("-")
    key = SORTS[column][1 if descending else 0]
    direction = "DESC" if descending else "ASC"
    where, params = ["deleted_at IS NULL"], []
    for name, value in (filters or {}).items():
        if name not in FILTERS:
            raise ValueError(f"cannot filter by {name!r}")
        values = [_plain(v) for v in value] if isinstance(value, (list, tuple, set, frozenset)) else [_plain(value)]
        if not values:
            continue
        if len(values) == 1:  # the plain form keeps the planner's estimates for one value
            params.append(values[0])
            where.append(f"{name} = ${len(params)}")
        else:
            params.append(values)
            where.append(f"{name} = ANY(${len(params)}::{FILTERS[name]})")
    if tags:
        params.append(list(tags))
        where.append(f"tags @> ${len(params)}")
    if cursor is not None:
        cursor.require_sort(column)
        params += [cursor.value, cursor.id]
        comparison = "<" if descending else ">"
        where.append(f"({key}, id) {comparison} (${len(params) - 1}, ${len(params)})")
    params.append(limit + 1)
    query = (f"{_SELECT}, {key} AS sort_key FROM {Ticket.__tablename__} WHERE {' AND '.join(where)} "
             f"ORDER BY {key} {direction}, id {direction} LIMIT ${len(params)}")
    async with driver_of(session) as connection:
        rows = await connection.fetch(query, *params)
    tickets = [ticket_from_row(row) for row in rows]
    return page_of(tickets, limit, column, value=lambda last: _plain(rows[limit - 1]["sort_key"]))


async def check_external_id(
    session: AsyncSession, external_id: str | None, *, other_than: uuid.UUID | None = None
) -> None:
    """A second ticket with the same `external_id` is a conflict, said in words (the unique
    index still decides a race; the error middleware words that one too)."""
    if external_id is None:
        return
    query = select(Ticket.number).where(Ticket.external_id == external_id)
    if other_than is not None:
        query = query.where(Ticket.id != other_than)
    number = await session.scalar(query.limit(1))
    if number is not None:
        raise Conflict(
            f"ticket #{number} already has external_id {external_id!r}; an external_id is unique",
            {"external_id": f"already used by ticket #{number}"},
        )


async def audit_page(
    session: AsyncSession, ticket_id: uuid.UUID, *, limit: int, cursor: Cursor | None = None
) -> tuple[list[TicketAuditLog], Cursor | None]:
    """A ticket's audit trail, oldest first."""
    query = select(TicketAuditLog).where(TicketAuditLog.ticket_id == ticket_id)
    query = keyset(query, TicketAuditLog.created_at, TicketAuditLog.id, cursor, limit=limit)
    return page_of(list(await session.scalars(query)), limit)
