"""Customers (and their tickets), agents, API tokens."""

from __future__ import annotations

import uuid

from aiohttp import web
from typing import Annotated

from pydantic import ConfigDict, Field, StringConstraints
from sqlalchemy import func, select

from core.actor import Actor
from core.agents import tokens
from core.agents.tokens import Principal
from core.agents.models import ApiToken
from core.agents.schemas import AgentIn, AgentOut, AgentUpdate, IssuedToken, TokenIn, TokenList, TokenOut
from core.agents.service import agent_crud
from core.customers.schemas import CustomerIn, CustomerOut, CustomerUpdate
from core.customers.erasure import erase_customer
from core.customers.service import customer_crud
from core.enums import AgentRole
from core.errors import Conflict, Forbidden, NotFound
from core.pagination import clamp_limit
from core.tickets.schemas import TicketList
from core.tickets.repository import ticket_page
from gateway.http.crud import crud_routes
from gateway.http.keys import AGENT, SESSION, SETTINGS, STORE
from gateway.http.middleware import auth_changed
from gateway.http.routing import ADMIN, EVERYONE, STAFF, RouteTable, json_response, parse_body, parse_query
from gateway.http.tickets import Page


class CustomerQuery(Page):
    model_config = ConfigDict(extra="forbid")

    email: list[str] | None = Field(default=None, description="exact addresses, in any case (a,b or repeated)")
    q: Annotated[str, StringConstraints(min_length=1, max_length=255)] | None = Field(
        default=None, description="part of the name or the address, in any case",
    )
    organization_id: list[uuid.UUID] | None = None


class AgentQuery(Page):
    role: list[AgentRole] | None = None
    active: bool | None = None
    group_id: list[uuid.UUID] | None = Field(default=None, description="members of any of these groups")


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


@extra.delete(
    "/api/v1/customers/{id}",
    summary="Erase a customer's personal data (their tickets stay, their words are redacted)",
    response=CustomerOut, roles=STAFF,
)
async def erase(request: web.Request) -> web.Response:
    session = request[SESSION]
    customer = await customer_crud.get(session, request.match_info["id"])
    erased = await erase_customer(session, customer, Actor.agent(request[AGENT]))
    store = request.app[STORE]
    for digest in erased.orphaned_digests:
        await store.remove(digest)
    await session.refresh(customer)
    return json_response(CustomerOut.model_validate(customer))


@extra.delete(
    "/api/v1/agents/{id}",
    summary="Deactivate an agent: they can no longer sign in, their work stays attributed",
    response=AgentOut, roles=ADMIN,
)
async def deactivate(request: web.Request) -> web.Response:
    session = request[SESSION]
    agent = await agent_crud.get(session, request.match_info["id"])
    agent = await agent_crud.update(session, agent, AgentUpdate(active=False))
    auth_changed(request)  # their tokens stop working in every process
    return json_response(AgentOut.model_validate(agent))


@extra.post(
    "/api/v1/tokens", summary="Issue an API token (shown once)", body=TokenIn, response=IssuedToken,
    statuses=(201,),
)
async def issue_token(request: web.Request) -> web.Response:
    data = await parse_body(request, TokenIn)
    session = request[SESSION]
    me: Principal = request[AGENT]
    # a token acts as its owner: minting one for someone else would be acting as them (an
    # operator uses `helpdesk token create` for that, on the host)
    if data.agent_id is not None and data.agent_id != me.id:
        raise Forbidden("tokens are issued only to their own agent")
    limit = request.app[SETTINGS].max_tokens_per_agent
    active = await session.scalar(
        select(func.count()).select_from(ApiToken).where(ApiToken.agent_id == me.id, ApiToken.revoked_at.is_(None))
    )
    if (active or 0) >= limit:
        raise Conflict(f"at most {limit} active tokens per agent; revoke one first")
    token = tokens.issue(session, agent=me, name=data.name)
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
