"""Inbound records: what arrived, what became of it, the raw bytes."""

from __future__ import annotations

import uuid
from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import delete

from core.enums import InboundStatus
from core.ingest.intake import IntakeUnavailable, Submission
from core.ingest.models import InboundMessage, InboundStart
from core.ingest.submission import support_recipients
from core.mail.addresses import support_mailbox
from core.ingest.repository import inbound_page
from core.mail.authentication import strip_untrusted
from core.pagination import clamp_limit
from gateway.http.errors import ApiError, not_found
from gateway.http.keys import INTAKE, SESSION, SETTINGS
from gateway.http.routing import STAFF, RouteTable, parse_query
from gateway.http.tickets import Page, attachment_response

routes = RouteTable("inbound")


class InboundOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    received_at: datetime
    source: str
    peer: str | None
    mail_from: str
    rcpt_tos: list[str]
    size: int
    sha256: str
    message_id: str | None
    status: InboundStatus
    reason: str | None
    matched_rule: str | None
    ticket_id: uuid.UUID | None
    comment_id: uuid.UUID | None
    duplicate_of_id: uuid.UUID | None
    attempts: int
    last_error: str | None
    processed_at: datetime | None
    auth_verdict: str | None = None  # DMARC with SPF and DKIM, and how it was decided


class InboundList(BaseModel):
    inbound: list[InboundOut]
    next_cursor: str | None


class InboundQuery(Page):
    status: list[InboundStatus] | None = Field(
        default=None, description="e.g. quarantined (several: a,b or repeated)",
    )


async def inbound_or_404(request: web.Request) -> InboundMessage:
    try:
        inbound_id = uuid.UUID(request.match_info["inbound"])
    except ValueError:
        raise not_found("inbound message") from None
    inbound = await request[SESSION].get(InboundMessage, inbound_id)
    if inbound is None:
        raise not_found("inbound message")
    return inbound


@routes.get(
    "/api/v1/inbound", roles=STAFF, summary="Inbound messages, newest first", response=InboundList,
    query=InboundQuery,
)
async def list_inbound(request: web.Request) -> web.Response:
    query = parse_query(request, InboundQuery)
    rows, cursor = await inbound_page(
        request[SESSION], columns=list(InboundOut.model_fields), limit=clamp_limit(query.limit),
        cursor=query.decoded_cursor(), status=query.status or (),
    )
    body = InboundList(
        inbound=[InboundOut.model_validate(row._mapping) for row in rows],
        next_cursor=cursor.encode() if cursor else None,
    )
    return web.json_response(text=body.model_dump_json())


@routes.get("/api/v1/inbound/{inbound}", roles=STAFF, summary="One inbound message's record", response=InboundOut)
async def get_inbound(request: web.Request) -> web.Response:
    inbound = await inbound_or_404(request)
    return web.json_response(text=InboundOut.model_validate(inbound).model_dump_json())


@routes.get(
    "/api/v1/inbound/{inbound}/raw", roles=STAFF, summary="The message exactly as received",
    content_type="message/rfc822",
)
async def get_raw(request: web.Request) -> web.Response:
    inbound = await inbound_or_404(request)
    return attachment_response(inbound.raw, f"{inbound.id}.eml", "message/rfc822")


class Accepted(BaseModel):
    id: uuid.UUID
    status: InboundStatus


class SubmitQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recipient: str | None = None


@routes.post(
    "/api/v1/inbound", roles=STAFF, summary="Submit a raw RFC 5322 message to the ingest pipeline",
    response=Accepted, query=SubmitQuery, statuses=(202,), raw_body="message/rfc822",
)
async def submit_inbound(request: web.Request) -> web.Response:
    settings = request.app[SETTINGS]
    query = parse_query(request, SubmitQuery)
    raw = await request.read()
    if not raw.strip():
        raise ApiError(422, "validation_failed", "empty message", {"body": "a raw RFC 5322 message is required"})
    if len(raw) > settings.max_message_bytes:
        raise ApiError(413, "too_large", f"message exceeds {settings.max_message_bytes} bytes")
    if query.recipient is not None:
        if support_mailbox(query.recipient, settings.support_mailboxes) is None:
            raise ApiError(422, "validation_failed", "not a support address",
                           {"recipient": f"{query.recipient} is not a support address"})
        rcpt = [query.recipient]
    else:
        rcpt = support_recipients(raw, settings.support_mailboxes)
        if not rcpt:
            raise ApiError(422, "validation_failed", "no support address among the recipients",
                           {"recipient": "give ?recipient= or address the message to a support address"})
    try:
        inbound_id = await request.app[INTAKE].submit(
            Submission(mail_from="", rcpt_tos=rcpt, raw=strip_untrusted(raw, settings.trusted_authserv_id_set),
                       source="api", peer=request.remote)
        )
    except IntakeUnavailable:
        raise ApiError(503, "unavailable", "the message could not be stored; retry later") from None
    body = Accepted(id=inbound_id, status=InboundStatus.pending)
    return web.json_response(text=body.model_dump_json(), status=202)


@routes.post(
    "/api/v1/inbound/{inbound}/reprocess", roles=STAFF, summary="Send a quarantined message through the pipeline again",
    response=Accepted, statuses=(202,),
)
async def reprocess_inbound(request: web.Request) -> web.Response:
    inbound = await inbound_or_404(request)
    if inbound.status is not InboundStatus.quarantined:
        raise ApiError(409, "conflict", f"only quarantined messages can be reprocessed (this one is {inbound.status.value})")
    inbound.status = InboundStatus.pending
    inbound.attempts = 0
    inbound.retry_at = None
    inbound.reason = None
    inbound.last_error = None
    inbound.processed_at = None
    # a fresh start: crashes counted before (core.ingest.runner) are forgiven with the attempts
    await request[SESSION].execute(delete(InboundStart).where(InboundStart.inbound_id == inbound.id))
    body = Accepted(id=inbound.id, status=InboundStatus.pending)
    return web.json_response(text=body.model_dump_json(), status=202)
