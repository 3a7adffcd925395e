"""The inbound records list: newest first, filtered by status, keyset-paged."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Row, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.enums import InboundStatus
from core.ingest.models import InboundMessage
from core.pagination import Cursor, keyset, page_of


async def inbound_page(
    session: AsyncSession, *, columns: Sequence[str], limit: int, cursor: Cursor | None = None,
    status: Sequence[InboundStatus] = (),
) -> tuple[list[Row[Any]], Cursor | None]:
    """The named columns (never the raw bytes unless asked) of a page of records."""
    query = select(*(getattr(InboundMessage, name) for name in columns))
    if status:
        query = query.where(InboundMessage.status.in_(status))
    query = keyset(query, InboundMessage.received_at, InboundMessage.id, cursor, limit=limit,
                   descending=True, sort="received_at")
    rows = list((await session.execute(query)).all())
    return page_of(rows, limit, key="received_at")
