"""One ticket as the API shows it, read from a row rather than ORM objects (pages: repository.py).

The hottest reads of the desk (one ticket, a page of tickets) spent most of their time in
SQLAlchemy, building ORM objects only to copy them into `TicketOut`; these read the columns
`TicketOut` shows, with the asyncpg driver under the request's session, and nothing else.
"""

from __future__ import annotations

import uuid

from sqlalchemy.ext.asyncio import AsyncSession

from core.db import driver_of
from core.tickets.models import Ticket
from core.tickets.schemas import TicketOut

VIEW_COLUMNS = tuple(getattr(Ticket, name) for name in TicketOut.model_fields)

_SELECT_ALL = f"SELECT {', '.join(c.key for c in VIEW_COLUMNS)} FROM {Ticket.__tablename__}"
_SELECT = _SELECT_ALL + " WHERE deleted_at IS NULL AND "
_BY_ID = _SELECT + "id = $1"
_BY_NUMBER = _SELECT + "number = $1"


def ticket_ref(ref: str) -> uuid.UUID | int | None:
    """A ticket reference from a URL: its UUID or its human number; None if it is neither."""
    if ref.isdigit() and len(ref) < 19:
        return int(ref)
    try:
        return uuid.UUID(ref)
    except ValueError:
        return None


async def ticket_view(session: AsyncSession, ref: str) -> TicketOut | None:
    """One ticket by UUID or number, soft-deleted ones not found; no ORM objects involved."""
    key = ticket_ref(ref)
    if key is None:
        return None
    async with driver_of(session) as connection:
        row = await connection.fetchrow(_BY_NUMBER if isinstance(key, int) else _BY_ID, key)
    return None if row is None else TicketOut.model_validate(dict(row))
