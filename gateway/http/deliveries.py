"""Outgoing notification deliveries: what was sent to whom, and what failed and why."""

from __future__ import annotations

import uuid
from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from core.enums import DeliveryStatus
from core.pagination import clamp_limit
from gateway.http.keys import SESSION
from outbound.repository import delivery_page
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
    status: list[DeliveryStatus] | None = Field(default=None, description="e.g. failed (several: a,b or repeated)")
    ticket_id: list[uuid.UUID] | None = None


@routes.get(
    "/api/v1/deliveries", summary="Notification deliveries, newest first (e.g. ?status=failed)",
    response=DeliveryList, query=DeliveryQuery, roles=STAFF,
)
async def list_deliveries(request: web.Request) -> web.Response:
    query = parse_query(request, DeliveryQuery)
    rows, cursor = await delivery_page(
        request[SESSION], limit=clamp_limit(query.limit), cursor=query.decoded_cursor(),
        status=query.status or (), ticket_id=query.ticket_id or (),
    )
    body = DeliveryList(
        deliveries=[DeliveryOut.model_validate(r) for r in rows], next_cursor=cursor.encode() if cursor else None,
    )
    return web.json_response(text=body.model_dump_json())
