"""Ticket routes: list, show, comments with their attachments, attachment downloads."""

from __future__ import annotations

import logging
import uuid
from contextlib import aclosing
from enum import Enum
from typing import Annotated, Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from sqlalchemy import select

from core.attachments import BlobUnavailable
from core.enums import Channel, TicketPriority, TicketStatus, TicketType
from core.pagination import MAX_LIMIT, BadCursor, Cursor, clamp_limit
from core.tickets.models import TicketAttachment
from core.tickets.schemas import (
    AuditList,
    AuditOut,
    CommentList,
    TicketList,
    TicketOut,
)
from core.tickets.service import ticket_service
from core.tickets.repository import SORT_CHOICES, audit_page, ticket_page
from core.tickets.views import comments_out, ticket_view
from gateway.http.errors import ApiError, not_found
from gateway.http.keys import AGENT, SEARCH, SESSION, STORE
from gateway.http.routing import RouteTable, parse_query
from gateway.http.search import search_errors
from search.backend import BadCursor as BadSearchCursor
from search.query import QueryError
from search.resolve import PRIORITY_RANK, Filter

log = logging.getLogger(__name__)
routes = RouteTable("tickets")


class Page(BaseModel):
    model_config = ConfigDict(extra="forbid")

    limit: int = Field(default=25, ge=1, le=10_000, description=f"clamped to {MAX_LIMIT}")
    cursor: str | None = None

    def decoded_cursor(self) -> Cursor | None:
        if self.cursor is None:
            return None
        try:
            return Cursor.decode(self.cursor)
        except BadCursor as exc:
            raise ApiError(422, "validation_failed", str(exc), {"cursor": str(exc)}) from exc


SortKey = Literal[SORT_CHOICES]  # type: ignore[valid-type]
Several = Field(default=None, description="one value, several as a,b or repeated; any of them matches")


class TicketQuery(Page):
    q: str | None = Field(
        default=None,
        description="search words and qualifiers, as GET /api/v1/search; the other filters narrow it "
                    "and the results come ranked (sort does not apply)",
    )
    sort: SortKey = Field(  # type: ignore[valid-type]
        default="-created_at", description="the order of the list; a leading - sorts descending",
    )
    tags: list[str] | None = Field(default=None, description="tickets having all of these tags (a,b or repeated)")
    status: list[TicketStatus] | None = Several
    priority: list[TicketPriority] | None = Several
    type: list[TicketType] | None = Several
    channel: list[Channel] | None = Several
    group_id: list[uuid.UUID] | None = Several
    requester_id: list[uuid.UUID] | None = Several
    assignee_id: list[uuid.UUID] | None = Several
    organization_id: list[uuid.UUID] | None = Several
    external_id: list[Annotated[str, StringConstraints(max_length=255)]] | None = Field(
        default=None, description="the id your system gave the ticket (several: any of them)"
    )


@routes.get(
    "/api/v1/tickets", summary="List tickets, newest first unless sort says otherwise",
    response=TicketList, query=TicketQuery,
)
async def list_tickets(request: web.Request) -> web.Response:
    query = parse_query(request, TicketQuery)
    filters = query.model_dump(exclude={"limit", "cursor", "sort", "tags", "q"}, exclude_none=True)
    tags = [t.lower() for t in query.tags or ()]
    if query.q is not None:
        return await _searched_tickets(request, query, filters, tags)
    tickets, next_cursor = await ticket_page(
        request[SESSION], limit=clamp_limit(query.limit), cursor=query.decoded_cursor(),
        filters=filters, tags=tags, sort=query.sort,
    )
    body = TicketList(
        tickets=tickets,
        next_cursor=next_cursor.encode() if next_cursor else None,
    )
    return web.json_response(text=body.model_dump_json())


async def _searched_tickets(
    request: web.Request, query: TicketQuery, filters: dict[str, object], tags: list[str]
) -> web.Response:
    """`q` given: the search engine answers, the list's other filters narrowing it."""
    if "external_id" in filters:
        raise ApiError(422, "validation_failed", "external_id and q cannot be combined; use one of them",
                       {"external_id": "not with q"})

    def plain(name: str, value: object) -> object:
        value = value.value if isinstance(value, Enum) else value
        return PRIORITY_RANK[str(value)] if name == "priority" else value

    extra = [Filter(name, tuple(plain(name, v) for v in values))  # type: ignore[attr-defined]
             for name, values in filters.items()]
    if tags:
        extra += [Filter("tags", (tag,)) for tag in tags]  # all of them, as the list means it
    try:
        found = await request.app[SEARCH].tickets(
            request[SESSION], query.q or "", viewer_id=request[AGENT].id, limit=clamp_limit(query.limit),
            cursor=query.cursor, filters=tuple(extra),
        )
    except (QueryError, BadSearchCursor, TimeoutError) as exc:
        raise search_errors(exc) from None
    tickets = [TicketOut.model_validate(r.model_dump(include=set(TicketOut.model_fields))) for r in found.results]
    return web.json_response(text=TicketList(tickets=tickets, next_cursor=found.next_cursor).model_dump_json())


async def ticket_or_404(request: web.Request):  # type: ignore[no-untyped-def]
    ticket = await ticket_service.get(request[SESSION], request.match_info["ticket"])
    if ticket is None:
        raise not_found("ticket")
    return ticket


@routes.get("/api/v1/tickets/{ticket}", summary="One ticket, by UUID or number", response=TicketOut)
async def get_ticket(request: web.Request) -> web.Response:
    ticket = await ticket_view(request[SESSION], request.match_info["ticket"])
    if ticket is None:
        raise not_found("ticket")
    return web.json_response(text=ticket.model_dump_json())


@routes.get(
    "/api/v1/tickets/{ticket}/comments", summary="A ticket's comments, oldest first",
    response=CommentList, query=Page,
)
async def list_comments(request: web.Request) -> web.Response:
    ticket = await ticket_or_404(request)
    page = parse_query(request, Page)
    session = request[SESSION]
    comments, next_cursor = await ticket_service.list_comments(
        session, ticket, limit=clamp_limit(page.limit), cursor=page.decoded_cursor()
    )
    body = CommentList(
        comments=await comments_out(session, comments),
        next_cursor=next_cursor.encode() if next_cursor else None,
    )
    return web.json_response(text=body.model_dump_json())


@routes.get(
    "/api/v1/tickets/{ticket}/audits", summary="A ticket's audit trail, oldest first",
    response=AuditList, query=Page,
)
async def list_audits(request: web.Request) -> web.Response:
    ticket = await ticket_or_404(request)
    page = parse_query(request, Page)
    rows, cursor = await audit_page(
        request[SESSION], ticket.id, limit=clamp_limit(page.limit), cursor=page.decoded_cursor()
    )
    body = AuditList(
        audits=[AuditOut.model_validate(r) for r in rows], next_cursor=cursor.encode() if cursor else None
    )
    return web.json_response(text=body.model_dump_json())


@routes.get(
    "/api/v1/tickets/{ticket}/attachments/{attachment}",
    summary="Download an attachment's exact bytes", content_type="application/octet-stream",
)
async def download_attachment(request: web.Request) -> web.StreamResponse:
    ticket = await ticket_or_404(request)
    try:
        attachment_id = uuid.UUID(request.match_info["attachment"])
    except ValueError:
        raise not_found("attachment") from None
    attachment = await request[SESSION].scalar(
        select(TicketAttachment).where(
            TicketAttachment.id == attachment_id, TicketAttachment.ticket_id == ticket.id
        )
    )
    if attachment is None:
        raise not_found("attachment")
    await request[SESSION].close()  # a slow download must not hold a database connection
    blob = await request.app[STORE].open(attachment.sha256)  # missing or unreachable: 404 or 503
    response = web.StreamResponse(headers=download_headers(attachment.filename))
    response.content_type = "application/octet-stream"
    response.content_length = blob.size
    await response.prepare(request)
    try:
        async with aclosing(blob.chunks) as chunks:  # a client gone mid-way closes the file too
            async for chunk in chunks:
                await response.write(chunk)
    except BlobUnavailable as exc:  # the headers are gone: all we can do is cut the body short
        log.warning("attachment %s cut short: %s", attachment.id, exc)
        raise ConnectionResetError("attachment store failed mid-download") from exc
    await response.write_eof()
    return response


def download_headers(filename: str) -> dict[str, str]:
    """Served only as a download: never rendered by the browser in our origin."""
    from urllib.parse import quote

    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return {
        "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}",
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": "default-src 'none'; sandbox",
    }


def attachment_response(data: bytes, filename: str, content_type: str = "application/octet-stream") -> web.Response:
    return web.Response(body=data, content_type=content_type, headers=download_headers(filename))
