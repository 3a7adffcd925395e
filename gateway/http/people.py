"""Customers (and their tickets), agents, API tokens."""

from __future__ import annotations

import uuid

from aiohttp import web
from pydantic import ConfigDict
from sqlalchemy import select

from core.agents import tokens
from core.agents.tokens import Principal
from core.agents.models import ApiToken
from core.agents.schemas import AgentIn, AgentOut, AgentUpdate, IssuedToken, TokenIn, TokenList, TokenOut
from core.agents.service import agent_crud
from core.customers.schemas import CustomerIn, CustomerOut, CustomerUpdate
from core.customers.service import customer_crud
from core.enums import AgentRole
from core.errors import Forbidden, NotFound
from core.pagination import clamp_limit
from core.tickets.schemas import TicketList
from core.tickets.views import ticket_page
from gateway.http.crud import crud_routes
from gateway.http.keys import AGENT, SESSION
from gateway.http.middleware import auth_changed
from gateway.http.routing import ADMIN, EVERYONE, STAFF, RouteTable, json_response, parse_body, parse_query
from gateway.http.tickets import Page


class CustomerQuery(Page):
    model_config = ConfigDict(extra="forbid")

    email: str | None = None
    organization_id: uuid.UUID | None = None


class AgentQuery(Page):
    role: AgentRole | None = None
    active: bool | None = None


customers = crud_routes(
    customer_crud, plural="customers", out=CustomerOut, create=CustomerIn, update=CustomerUpdate,
    write_roles=STAFF, query=CustomerQuery, deletable=False,
)
agents = crud_routes(
    agent_crud, plural="agents", out=AgentOut, create=AgentIn, update=AgentUpdate,
    read_roles=EVERYONE, write_roles=ADMIN, query=AgentQuery, deletable=False,
    # a role change or a deactivation must not wait for cached tokens to expire
    on_change=auth_changed,
)
extra = RouteTable("people")


@extra.get(
    "/api/v1/customers/{id}/tickets", summary="A customer's tickets, newest first",
    response=TicketList, query=Page,
)
async def customer_tickets(request: web.Request) -> web.Response:
    session = request[SESSION]
    customer = await customer_crud.get(session, request.match_info["id"])
    page = parse_query(request, Page)
    rows, cursor = await ticket_page(
        session, limit=clamp_limit(page.limit), cursor=page.decoded_cursor(),
        filters={"requester_id": customer.id},
    )
    return json_response(TicketList(
        tickets=rows,
        next_cursor=cursor.encode() if cursor else None,
    ))


@extra.post(
    "/api/v1/tokens", summary="Issue an API token (shown once)", body=TokenIn, response=IssuedToken,
    statuses=(201,),
)
async def issue_token(request: web.Request) -> web.Response:
    data = await parse_body(request, TokenIn)
    session = request[SESSION]
    me: Principal = request[AGENT]
    owner = me
    if data.agent_id is not None and data.agent_id != me.id:
        if me.role is not AgentRole.admin:
            raise Forbidden("only admins issue tokens for other agents")
        owner = await agent_crud.get(session, data.agent_id)
    token = tokens.issue(session, agent=owner, name=data.name)
    await session.flush()
    row = await session.scalar(select(ApiToken).where(ApiToken.token_hash == tokens.hash_token(token)))
    return json_response(IssuedToken(**TokenOut.model_validate(row).model_dump(), token=token), status=201)


@extra.get("/api/v1/tokens", summary="Your tokens (an admin's: everyone's)", response=TokenList)
async def list_tokens(request: web.Request) -> web.Response:
    me: Principal = request[AGENT]
    query = select(ApiToken).order_by(ApiToken.created_at)
    if me.role is not AgentRole.admin:
        query = query.where(ApiToken.agent_id == me.id)
    rows = await request[SESSION].scalars(query.limit(1000))
    return json_response(TokenList(tokens=[TokenOut.model_validate(r) for r in rows]))


@extra.delete("/api/v1/tokens/{id}", summary="Revoke a token", statuses=(204,))
async def revoke_token(request: web.Request) -> web.Response:
    me: Principal = request[AGENT]
    try:
        token_id = uuid.UUID(request.match_info["id"])
    except ValueError:
        raise NotFound("token not found") from None
    row = await request[SESSION].get(ApiToken, token_id)
    if row is None or (row.agent_id != me.id and me.role is not AgentRole.admin):
        raise NotFound("token not found")
    tokens.revoke(row)
    auth_changed(request)  # every process stops accepting it now, not in a few seconds
    return web.Response(status=204)


ROUTES = (customers, extra, agents)
