"""Ticket routes: list, show, comments with their attachments, attachment downloads."""

from __future__ import annotations

import uuid
from collections import defaultdict
from typing import Literal

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from core.audit.models import TicketAuditLog

from core.enums import TicketPriority, TicketStatus
from core.pagination import MAX_LIMIT, BadCursor, Cursor, clamp_limit, page_of
from core.tickets.models import TicketAttachment, TicketComment
from core.tickets.schemas import (
    AttachmentOut,
    AuditList,
    AuditOut,
    CommentList,
    CommentOut,
    TicketList,
    TicketOut,
)
from core.tickets.service import ticket_service
from core.tickets.views import comment_out, comments_out, ticket_page, ticket_view
from gateway.http.errors import ApiError, not_found
from gateway.http.keys import SESSION, STORE
from gateway.http.routing import RouteTable, parse_query

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


class TicketQuery(Page):
    sort: Literal["created_at", "-created_at", "updated_at", "-updated_at"] = "-created_at"
    tags: str | None = Field(default=None, description="comma-separated; tickets having all of them")
    status: TicketStatus | None = None
    priority: TicketPriority | None = None
    group_id: uuid.UUID | None = None
    requester_id: uuid.UUID | None = None
    assignee_id: uuid.UUID | None = None
    organization_id: uuid.UUID | None = None


@routes.get(
    "/api/v1/tickets", summary="List tickets (newest first unless `sort` says otherwise)",
    response=TicketList, query=TicketQuery,
)
async def list_tickets(request: web.Request) -> web.Response:
    query = parse_query(request, TicketQuery)
    filters = query.model_dump(exclude={"limit", "cursor", "sort", "tags"}, exclude_none=True)
    tags = [t.strip().lower() for t in (query.tags or "").split(",") if t.strip()]
    tickets, next_cursor = await ticket_page(
        request[SESSION], limit=clamp_limit(query.limit), cursor=query.decoded_cursor(),
        filters=filters, tags=tags, sort=query.sort,
    )
    body = TicketList(
        tickets=tickets,
        next_cursor=next_cursor.encode() if next_cursor else None,
    )
    return web.json_response(text=body.model_dump_json())


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
    limit = clamp_limit(page.limit)
    query = select(TicketAuditLog).where(TicketAuditLog.ticket_id == ticket.id)
    cursor = page.decoded_cursor()
    if cursor is not None:
        query = query.where(
            tuple_(TicketAuditLog.created_at, TicketAuditLog.id) > tuple_(cursor.created_at, cursor.id)
        )
    rows = list(await request[SESSION].scalars(
        query.order_by(TicketAuditLog.created_at, TicketAuditLog.id).limit(limit + 1)
    ))
    rows, cursor = page_of(rows, limit)
    body = AuditList(
        audits=[AuditOut.model_validate(r) for r in rows], next_cursor=cursor.encode() if cursor else None
    )
    return web.json_response(text=body.model_dump_json())


@routes.get(
    "/api/v1/tickets/{ticket}/attachments/{attachment}",
    summary="Download an attachment's exact bytes", content_type="application/octet-stream",
)
async def download_attachment(request: web.Request) -> web.Response:
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
    data = await request.app[STORE].read(attachment.sha256)
    return attachment_response(data, attachment.filename)


def attachment_response(data: bytes, filename: str, content_type: str = "application/octet-stream") -> web.Response:
    """Served only as a download: never rendered by the browser in our origin."""
    from urllib.parse import quote

    ascii_name = filename.encode("ascii", "replace").decode().replace('"', "_").replace("?", "_")
    return web.Response(
        body=data,
        content_type=content_type,
        headers={
            "Content-Disposition": f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}",
            "X-Content-Type-Options": "nosniff",
            "Content-Security-Policy": "default-src 'none'; sandbox",
        },
    )
