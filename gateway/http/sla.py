"""SLA over HTTP: a ticket's targets, and compliance over a period."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from aiohttp import web

from core.sla.schemas import Compliance, ComplianceQuery, SlaTargetOut, TicketSla
from core.sla.targets import compliance, ticket_sla
from core.tickets.changes import require_ticket
from gateway.http.errors import ApiError
from gateway.http.keys import SESSION
from gateway.http.routing import RouteTable, json_response, parse_query

routes = RouteTable("sla")


@routes.get(
    "/api/v1/tickets/{ticket}/sla", summary="A ticket's SLA targets (first reply, next reply, resolution)",
    response=TicketSla,
)
async def ticket_targets(request: web.Request) -> web.Response:
    session = request[SESSION]
    ticket = await require_ticket(session, request.match_info["ticket"])
    targets = [
        SlaTargetOut(
            metric=t.metric, policy_id=t.policy_id, started_at=t.started_at, target_at=t.target_at,  # type: ignore[arg-type]
            fulfilled_at=t.fulfilled_at, breached_at=t.breached_at, paused=t.paused_at is not None,
        )
        for t in await ticket_sla(session, ticket)
    ]
    return json_response(TicketSla(sla_breach_at=ticket.sla_breach_at, targets=targets))


@routes.get(
    "/api/v1/sla/compliance", summary="Per metric: targets achieved, breached, still running, % achieved",
    response=Compliance, query=ComplianceQuery,
)
async def sla_compliance(request: web.Request) -> web.Response:
    q = parse_query(request, ComplianceQuery)
    end = q.end or datetime.now(UTC)
    start = q.start or end - timedelta(days=30)
    end, start = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (end, start))
    if start >= end:
        raise ApiError(422, "validation_failed", "`from` must be before `to`", {"from": "after `to`"})
    found = await compliance(request[SESSION], start=start, end=end, group_id=q.group_id, policy_id=q.policy_id)
    return json_response(Compliance.model_validate({"metrics": found}))
