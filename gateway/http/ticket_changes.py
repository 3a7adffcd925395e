"""Ticket changes over HTTP: create, update, update_many, delete, merge, comments."""

from __future__ import annotations

from aiohttp import BodyPartReader, web
from pydantic import ValidationError

from core.actor import Actor
from core.errors import Invalid
from core.tickets.changes import require_ticket, ticket_changes
from core.tickets.schemas import (
    CommentIn,
    CommentOut,
    MergeIn,
    TicketCreate,
    TicketOut,
    TicketUpdate,
    UpdateMany,
    UpdateManyOut,
)
from core.tickets.uploads import Upload
from gateway.http.errors import ApiError, from_validation
from gateway.http.keys import AGENT, SESSION, STORE
from gateway.http.routing import EVERYONE, STAFF, RouteTable, json_response, parse_body

routes = RouteTable("tickets")
MAX_FILES = 20


def actor(request: web.Request) -> Actor:
    return Actor.agent(request[AGENT])


# registered before `/tickets/{ticket}` so that `update_many` is not taken for a ticket id
@routes.put(
    "/api/v1/tickets/update_many", summary="Update up to 100 tickets, all or nothing",
    body=UpdateMany, response=UpdateManyOut, roles=STAFF,
)
async def update_many(request: web.Request) -> web.Response:
    data = await parse_body(request, UpdateMany)
    tickets = await ticket_changes.update_many(request[SESSION], data.ids, data.changes, actor(request))
    return json_response(UpdateManyOut(tickets=[TicketOut.model_validate(t) for t in tickets]))


@routes.post(
    "/api/v1/tickets", summary="Create a ticket", body=TicketCreate, response=TicketOut,
    roles=STAFF, statuses=(201,),
)
async def create_ticket(request: web.Request) -> web.Response:
    data = await parse_body(request, TicketCreate)
    ticket = await ticket_changes.create(request[SESSION], data, actor(request))
    return json_response(TicketOut.model_validate(ticket), status=201)


@routes.put(
    "/api/v1/tickets/{ticket}", summary="Update a ticket's fields, optionally with a comment",
    body=TicketUpdate, response=TicketOut, roles=STAFF,
)
async def update_ticket(request: web.Request) -> web.Response:
    data = await parse_body(request, TicketUpdate)
    ticket = await require_ticket(request[SESSION], request.match_info["ticket"])
    ticket = await ticket_changes.update(request[SESSION], ticket, data, actor(request))
    return json_response(TicketOut.model_validate(ticket))


@routes.delete("/api/v1/tickets/{ticket}", summary="Soft-delete a ticket", roles=STAFF, statuses=(204,))
async def delete_ticket(request: web.Request) -> web.Response:
    ticket = await require_ticket(request[SESSION], request.match_info["ticket"])
    await ticket_changes.delete(request[SESSION], ticket, actor(request))
    return web.Response(status=204)


@routes.post(
    "/api/v1/tickets/{ticket}/merge", summary="Merge the tickets in `ids` into this one",
    body=MergeIn, response=TicketOut, roles=STAFF,
)
async def merge_tickets(request: web.Request) -> web.Response:
    data = await parse_body(request, MergeIn)
    target = await require_ticket(request[SESSION], request.match_info["ticket"])
    target = await ticket_changes.merge(request[SESSION], target, data, actor(request))
    return json_response(TicketOut.model_validate(target))


@routes.post(
    "/api/v1/tickets/{ticket}/comments",
    summary="Add a comment (JSON, or multipart/form-data with `attachments` files)",
    body=CommentIn, response=CommentOut, roles=EVERYONE, statuses=(201,),
)
async def add_comment(request: web.Request) -> web.Response:
    if request.content_type == "multipart/form-data":
        data, uploads = await read_multipart(request)
    else:
        data, uploads = await parse_body(request, CommentIn), []
    out = await ticket_changes.add_comment(
        request[SESSION], request.match_info["ticket"], data, actor(request), uploads=uploads, store=request.app[STORE],
    )
    return json_response(out, status=201)


async def read_multipart(request: web.Request) -> tuple[CommentIn, list[Upload]]:
    try:
        return await _read_multipart(request)
    except (ValueError, AssertionError, RuntimeError, LookupError) as exc:
        # aiohttp's multipart reader raises these for a missing boundary or a broken body
        raise ApiError(400, "malformed_multipart", f"request body is not valid multipart/form-data: {exc}") from None


async def _read_multipart(request: web.Request) -> tuple[CommentIn, list[Upload]]:
    fields: dict[str, str] = {}
    files: list[Upload] = []
    reader = await request.multipart()
    while (part := await reader.next()) is not None:
        if not isinstance(part, BodyPartReader):
            raise Invalid("nested multipart is not supported", {"body": "nested multipart"})
        if part.filename is not None:
            if part.name != "attachments":
                raise Invalid("files go in the `attachments` field", {part.name or "file": "unexpected file"})
            if len(files) >= MAX_FILES:
                raise Invalid(f"at most {MAX_FILES} attachments", {"attachments": "too many files"})
            content_type = part.headers.get("Content-Type", "application/octet-stream")
            files.append(Upload(part.filename, content_type, bytes(await part.read(decode=True))))
        elif part.name in ("body", "visibility"):
            fields[part.name] = await part.text()
        else:
            raise Invalid("unknown form field", {part.name or "?": "unknown field"})
    if any("\x00" in value for value in fields.values()):
        raise Invalid("NUL characters are not allowed", {"body": "contains NUL"})
    try:
        return CommentIn.model_validate(fields), files
    except ValidationError as exc:
        raise from_validation(exc, where="form fields") from exc
