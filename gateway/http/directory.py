"""Customers and groups."""

from __future__ import annotations

import uuid
from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict

from core.customers.service import customer_service
from core.groups.service import group_service
from gateway.http.errors import not_found
from gateway.http.keys import SESSION
from gateway.http.routing import RouteTable

routes = RouteTable("directory")


class CustomerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    email: str
    organization_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime


class GroupOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str | None
    created_at: datetime


class GroupList(BaseModel):
    groups: list[GroupOut]


@routes.get("/api/v1/customers/{customer}", summary="One customer", response=CustomerOut)
async def get_customer(request: web.Request) -> web.Response:
    try:
        customer_id = uuid.UUID(request.match_info["customer"])
    except ValueError:
        raise not_found("customer") from None
    customer = await customer_service.get(request[SESSION], customer_id)
    if customer is None:
        raise not_found("customer")
    return web.json_response(text=CustomerOut.model_validate(customer).model_dump_json())


@routes.get("/api/v1/groups", summary="All groups", response=GroupList)
async def list_groups(request: web.Request) -> web.Response:
    groups = await group_service.list(request[SESSION])
    body = GroupList(groups=[GroupOut.model_validate(g) for g in groups])
    return web.json_response(text=body.model_dump_json())
