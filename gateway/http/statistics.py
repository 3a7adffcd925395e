"""Desk statistics over HTTP (registered before `/tickets/{ticket}`, which would take the name)."""

from __future__ import annotations

from aiohttp import web

from core.statistics.schemas import StatisticsOut, StatisticsQuery
from core.statistics.service import ticket_statistics
from gateway.http.keys import DB
from gateway.http.routing import RouteTable, json_response, parse_query

routes = RouteTable("tickets")


@routes.get(
    "/api/v1/tickets/statistics", summary="Counts, reply and resolution times, SLA compliance",
    response=StatisticsOut, query=StatisticsQuery,
)
async def statistics(request: web.Request) -> web.Response:
    q = parse_query(request, StatisticsQuery)
    assert q.start is not None and q.end is not None
    data = await ticket_statistics(request.app[DB], start=q.start, end=q.end, group_id=q.group_id)
    return json_response(StatisticsOut.model_validate(data))
