"""The notification deliveries list: newest first, filtered, keyset-paged."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.enums import DeliveryStatus
from core.events import OutboundDelivery
from core.pagination import Cursor, keyset, page_of


async def delivery_page(
    session: AsyncSession, *, limit: int, cursor: Cursor | None = None,
    status: Sequence[DeliveryStatus] = (), ticket_id: Sequence[uuid.UUID] = (),
) -> tuple[list[OutboundDelivery], Cursor | None]:
    query = select(OutboundDelivery)
    if status:
        query = query.where(OutboundDelivery.status.in_(status))
    if ticket_id:
        query = query.where(OutboundDelivery.ticket_id.in_(ticket_id))
    query = keyset(query, OutboundDelivery.created_at, OutboundDelivery.id, cursor, limit=limit, descending=True)
    return page_of(list(await session.scalars(query)), limit)
