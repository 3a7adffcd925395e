"""Outgoing notification deliveries: what was sent to whom, and what failed and why."""

from __future__ import annotations

import uuid
from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict
from sqlalchemy import select, tuple_

from core.enums import DeliveryStatus
from core.events import OutboundDelivery
from core.pagination import Cursor, clamp_limit
from gateway.http.keys import SESSION
from gateway.http.routing import STAFF, RouteTable, parse_query
from gateway.http.tickets import Page

routes = RouteTable("deliveries")


class DeliveryOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    event_id: uuid.UUID
    ticket_id: uuid.UUID | None
    recipient: str
    template: str
    message_id: str
    status: DeliveryStatus
    attempts: int
    last_error: str | None
    created_at: datetime
    sent_at: datetime | None


class DeliveryList(BaseModel):
    deliveries: list[DeliveryOut]
    next_cursor: str | None


class DeliveryQuery(Page):
    status: DeliveryStatus | None = None
    ticket_id: uuid.UUID | None = None


@routes.get(
    "/api/v1/deliveries", summary="Notification deliveries, newest first (e.g. ?status=failed)",
    response=DeliveryList, query=DeliveryQuery, roles=STAFF,
)
async def list_deliveries(request: web.Request) -> web.Response:
    query = parse_query(request, DeliveryQuery)
    limit = clamp_limit(query.limit)
    stmt = select(OutboundDelivery)
    if query.status is not None:
        stmt = stmt.where(OutboundDelivery.status == query.status)
    if query.ticket_id is not None:
        stmt = stmt.where(OutboundDelivery.ticket_id == query.ticket_id)
    cursor = query.decoded_cursor()
    if cursor is not None:
        stmt = stmt.where(
            tuple_(OutboundDelivery.created_at, OutboundDelivery.id) < tuple_(cursor.created_at, cursor.id)
        )
    rows = list(await request[SESSION].scalars(
        stmt.order_by(OutboundDelivery.created_at.desc(), OutboundDelivery.id.desc()).limit(limit + 1)
    ))
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = Cursor(rows[-1].created_at, rows[-1].id).encode()
    body = DeliveryList(deliveries=[DeliveryOut.model_validate(r) for r in rows], next_cursor=next_cursor)
    return web.json_response(text=body.model_dump_json())
