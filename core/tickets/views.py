"""One ticket as the API shows it, read from a row rather than ORM objects (pages: repository.py).

The hottest reads of the desk (one ticket, a page of tickets) spent most of their time in
SQLAlchemy, building ORM objects only to copy them into `TicketOut`; these read the columns
`TicketOut` shows, with the asyncpg driver under the request's session, and nothing else.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.db import driver_of
from core.tickets.models import Ticket, TicketAttachment, TicketComment
from core.tickets.schemas import AttachmentOut, CommentOut, TicketOut

SATISFACTION_COLUMNS = (Ticket.satisfaction_score, Ticket.satisfaction_comment, Ticket.satisfaction_rated_at)
VIEW_COLUMNS = (
    *(getattr(Ticket, name) for name in TicketOut.model_fields if name != "satisfaction"), *SATISFACTION_COLUMNS,
)


def ticket_values(row: Any) -> dict[str, Any]:
    """The fields of `TicketOut` (or a model extending it) from a row of VIEW_COLUMNS."""
    values = dict(row)
    score, comment, rated_at = (values.pop(c.key) for c in SATISFACTION_COLUMNS)
    if score is not None:
        values["satisfaction"] = {"score": score, "comment": comment, "rated_at": rated_at}
    return values


def ticket_from_row(row: Any) -> TicketOut:
    """`TicketOut` from a row of VIEW_COLUMNS."""
    return TicketOut.model_validate(ticket_values(row))

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
    return None if row is None else ticket_from_row(row)


async def comments_out(session: AsyncSession, comments: list[TicketComment]) -> list[CommentOut]:
    """Comments with their attachments and download URLs, in one query for all attachments."""
    attachments: dict[uuid.UUID, list[AttachmentOut]] = defaultdict(list)
    if comments:
        rows = await session.scalars(
            select(TicketAttachment)
            .where(TicketAttachment.comment_id.in_([c.id for c in comments]))
            .order_by(TicketAttachment.created_at)
        )
        for a in rows:
            attachments[a.comment_id].append(  # type: ignore[index]
                AttachmentOut(
                    id=a.id, filename=a.filename, content_type=a.content_type, size=a.size,
                    sha256=a.sha256, inline=a.inline, content_id=a.content_id,
                    url=f"/api/v1/tickets/{a.ticket_id}/attachments/{a.id}",
                )
            )
    return [comment_out(c, attachments[c.id]) for c in comments]


def comment_out(comment: TicketComment, attachments: list[AttachmentOut]) -> CommentOut:
    fields = {k: getattr(comment, k) for k in CommentOut.model_fields if k != "attachments"}
    return CommentOut.model_validate({**fields, "attachments": attachments})
