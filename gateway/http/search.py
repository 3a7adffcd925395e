"""`GET /api/v1/search`: tickets and customers by words and qualifiers."""

from __future__ import annotations

from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from core.pagination import MAX_LIMIT, clamp_limit
from gateway.http.errors import ApiError
from gateway.http.keys import AGENT, SEARCH, SESSION
from gateway.http.routing import RouteTable, json_response, parse_query
from search.backend import BadCursor
from search.query import QueryError
from search.schemas import SearchResults

routes = RouteTable("search")

QUERY_HELP = (
    "Words (all must match; accents and case ignored; one typo forgiven in words of five letters or"
    " more; the last word also as a prefix), \"exact phrases\", and qualifiers: status: priority:"
    " (also priority>normal) type: channel: tags: assignee: (email, me or none) group: (name or none)"
    " requester: (email) organization: (name or domain) created> created< updated> updated< solved>"
    " (2026-01-31, 7d, 24h). A leading - negates a word, phrase or qualifier; several values of one"
    " qualifier match any of them."
)


class SearchQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    q: str = Field(min_length=1, description=QUERY_HELP)
    type: Literal["ticket", "customer"] = "ticket"
    limit: int = Field(default=25, ge=1, le=10_000, description=f"clamped to {MAX_LIMIT}")
    cursor: str | None = None


def search_errors(exc: Exception) -> ApiError:
    """The query's own problems as a 422 naming the parameter; a query too broad as a 503."""
    if isinstance(exc, QueryError):
        return ApiError(422, "invalid_query", str(exc), {"q": str(exc)})
    if isinstance(exc, BadCursor):
        return ApiError(422, "validation_failed", str(exc), {"cursor": str(exc)})
    if isinstance(exc, TimeoutError):
        return ApiError(503, "search_timeout", "the search took too long; narrow the query and try again")
    raise exc


@routes.get(
    "/api/v1/search", summary="Search tickets (default) or customers", response=SearchResults,
    query=SearchQuery,
)
async def search(request: web.Request) -> web.Response:
    query = parse_query(request, SearchQuery)
    service = request.app[SEARCH]
    try:
        if query.type == "customer":
            results = await service.customers(
                request[SESSION], query.q, limit=clamp_limit(query.limit), cursor=query.cursor
            )
        else:
            results = await service.tickets(
                request[SESSION], query.q, viewer_id=request[AGENT].id, limit=clamp_limit(query.limit),
                cursor=query.cursor,
            )
    except (QueryError, BadCursor, TimeoutError) as exc:
        raise search_errors(exc) from None
    return json_response(results)
