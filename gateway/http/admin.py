"""Groups, organizations, macros (and applying them), SLA policies, triggers, automations."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from core.actor import Actor
from core.enums import TicketPriority
from core.automations.schemas import AutomationIn, AutomationOut, AutomationUpdate
from core.automations.service import automation_crud
from core.groups.schemas import GroupIn, GroupOut, GroupUpdate
from core.groups.service import group_crud, render_group
from core.macros.schemas import MacroIn, MacroOut, MacroUpdate
from core.macros.service import apply_macro, macro_crud
from core.organizations.schemas import OrganizationIn, OrganizationOut, OrganizationUpdate
from core.organizations.service import organization_crud
from core.sla.schemas import SlaPolicyIn, SlaPolicyOut, SlaPolicyUpdate
from core.sla.service import sla_policy_crud
from core.tickets.changes import require_ticket
from core.tickets.schemas import TicketOut
from core.triggers.schemas import TriggerIn, TriggerOut, TriggerUpdate
from core.triggers.service import trigger_crud
from gateway.http.crud import crud_routes
from gateway.http.keys import AGENT, SESSION
from gateway.http.routing import STAFF, RouteTable, json_response
from gateway.http.tickets import Page

class GroupInclude(BaseModel):
    model_config = ConfigDict(extra="forbid")

    include: list[Literal["agents"]] | None = Field(
        default=None, description="agents: embed each group's members, not only their ids",
    )


class GroupQuery(GroupInclude, Page):
    pass


class OrganizationQuery(Page):
    domain: list[str] | None = Field(default=None, description="organizations listing any of these email domains")


class SlaPolicyQuery(Page):
    priority: list[TicketPriority] | None = Field(
        default=None, description="policies that set a target for tickets of any of these priorities",
    )


groups = crud_routes(
    group_crud, plural="groups", out=GroupOut, create=GroupIn, update=GroupUpdate, render=render_group,
    query=GroupQuery, one_query=GroupInclude,
)
organizations = crud_routes(
    organization_crud, plural="organizations", out=OrganizationOut, create=OrganizationIn,
    update=OrganizationUpdate, query=OrganizationQuery,
)
macros = crud_routes(macro_crud, plural="macros", out=MacroOut, create=MacroIn, update=MacroUpdate)
sla_policies = crud_routes(
    sla_policy_crud, plural="sla_policies", out=SlaPolicyOut, create=SlaPolicyIn, update=SlaPolicyUpdate,
    query=SlaPolicyQuery,
)
triggers = crud_routes(trigger_crud, plural="triggers", out=TriggerOut, create=TriggerIn, update=TriggerUpdate)
automations = crud_routes(
    automation_crud, plural="automations", out=AutomationOut, create=AutomationIn, update=AutomationUpdate,
)

macro_use = RouteTable("macros")


@macro_use.post(
    "/api/v1/tickets/{ticket}/macros/{macro_id}/apply",
    summary="Apply a macro: its fields and comment as one audited change", response=TicketOut, roles=STAFF,
)
async def apply(request: web.Request) -> web.Response:
    session = request[SESSION]
    ticket = await require_ticket(session, request.match_info["ticket"])
    macro = await macro_crud.get(session, request.match_info["macro_id"])
    ticket = await apply_macro(session, ticket, macro, Actor.agent(request[AGENT]))
    return json_response(TicketOut.model_validate(ticket))


ROUTES = (groups, organizations, macros, macro_use, sla_policies, triggers, automations)
