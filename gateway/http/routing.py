"""Route tables that know their models and roles: the OpenAPI document is derived, not written,
and every route states who may call it."""

from __future__ import annotations

import functools
import json
import re
import typing
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from core.enums import AgentRole
from gateway.http.errors import ApiError, from_validation
from gateway.http.keys import AGENT

M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

EVERYONE = frozenset(AgentRole)
STAFF = frozenset({AgentRole.admin, AgentRole.agent})
ADMIN = frozenset({AgentRole.admin})


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    handler: Handler
    summary: str
    tag: str
    response: type[BaseModel] | None = None
    query: type[BaseModel] | None = None
    body: type[BaseModel] | None = None
    auth: bool = True
    roles: frozenset[AgentRole] = EVERYONE
    content_type: str = "application/json"
    statuses: tuple[int, ...] = ()  # success statuses other than 200
    raw_body: str | None = None  # content type of a non-JSON request body


def with_article(noun: str) -> str:
    """"an agent", "an SLA policy", "a group": for messages and summaries in plain English."""
    vowel_sound = noun[:1].lower() in "aeiou" or noun.startswith(("SLA", "API", "HTML"))
    return f"{'an' if vowel_sound else 'a'} {noun}"


def _guarded(handler: Handler, roles: frozenset[AgentRole]) -> Handler:
    @functools.wraps(handler)
    async def guarded(request: web.Request) -> web.StreamResponse:
        if request[AGENT].role not in roles:
            role = request[AGENT].role.value.replace("_", " ")
            raise ApiError(403, "forbidden", f"{with_article(role)} may not do this")
        return await handler(request)

    return guarded


@dataclass
class RouteTable:
    tag: str
    operations: list[Operation] = field(default_factory=list)

    def route(self, method: str, path: str, *, summary: str, **options: object) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.operations.append(
                Operation(method, path, handler, summary, self.tag, **options)  # type: ignore[arg-type]
            )
            return handler

        return register

    def get(self, path: str, *, summary: str, **options: object) -> Callable[[Handler], Handler]:
        return self.route("GET", path, summary=summary, **options)

    def post(self, path: str, *, summary: str, **options: object) -> Callable[[Handler], Handler]:
        return self.route("POST", path, summary=summary, **options)

    def put(self, path: str, *, summary: str, **options: object) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, summary=summary, **options)

    def delete(self, path: str, *, summary: str, **options: object) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, summary=summary, **options)

    def add_to(self, app: web.Application) -> None:
        for op in self.operations:
            handler = _guarded(op.handler, op.roles) if op.auth and op.roles != EVERYONE else op.handler
            app.router.add_route(op.method, op.path, handler)


def _takes_several(model: type[BaseModel], name: str) -> bool:
    field = model.model_fields.get(name)
    if field is None:
        return False
    kinds = [field.annotation, *typing.get_args(field.annotation)]
    return any(typing.get_origin(kind) is list for kind in kinds)


def query_values(request: web.Request, model: type[BaseModel]) -> dict[str, str | list[str]]:
    """The query string as `model` takes it: a list parameter from `a,b` or repeated (or both),
    any other parameter exactly once (a second value is refused, not silently dropped)."""
    data: dict[str, str | list[str]] = {}
    for name in dict.fromkeys(request.query.keys()):
        values = request.query.getall(name)
        if _takes_several(model, name):
            data[name] = [part.strip() for value in values for part in value.split(",") if part.strip()]
        elif len(values) > 1:
            raise ApiError(422, "validation_failed", f"{name} takes one value; it was given {len(values)}",
                           {name: "give it once"})
        else:
            data[name] = values[0]
    return data


def parse_query(request: web.Request, model: type[M]) -> M:
    bad = [name for name, value in request.query.items() if "\x00" in value or "\x00" in name]
    if bad:
        raise ApiError(422, "validation_failed", "NUL characters are not allowed", {n: "contains NUL" for n in bad})
    try:
        return model.model_validate(query_values(request, model))
    except ValidationError as exc:
        raise from_validation(exc, where="query parameters") from exc


# a JSON request is a ticket, a comment, a trigger: never megabytes (uploads are multipart), never
# deeper than a few levels. Bigger or deeper is refused before the parser and validators see it.
MAX_JSON_BYTES = 1024 * 1024
MAX_JSON_DEPTH = 32
_BRACKETS = re.compile(rb'[\[\]{}]|"(?:[^"\\]|\\.)*"')


def _nesting(raw: bytes) -> int:
    """The deepest nesting of arrays and objects, strings skipped; linear in the input."""
    depth = deepest = 0
    for token in _BRACKETS.finditer(raw):
        char = token.group()
        if char in (b"[", b"{"):
            depth += 1
            deepest = max(deepest, depth)
        elif char in (b"]", b"}"):
            depth -= 1
    return deepest


async def parse_body(request: web.Request, model: type[M]) -> M:
    """A JSON body validated by `model`: 400 if it is not JSON, 422 naming each bad field."""
    if (request.content_length or 0) > MAX_JSON_BYTES:
        raise ApiError(413, "request_entity_too_large", f"a JSON body may hold at most {MAX_JSON_BYTES} bytes")
    raw = await request.read()
    if len(raw) > MAX_JSON_BYTES:  # chunked: no Content-Length to refuse it by
        raise ApiError(413, "request_entity_too_large", f"a JSON body may hold at most {MAX_JSON_BYTES} bytes")
    if _nesting(raw) > MAX_JSON_DEPTH:
        raise ApiError(400, "malformed_json", f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
    try:
        data = json.loads(raw or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError, RecursionError):
        raise ApiError(400, "malformed_json", "request body is not valid JSON") from None
    if b"\\u0000" in raw:  # PostgreSQL text and JSONB cannot hold NUL characters
        raise ApiError(422, "validation_failed", "NUL characters are not allowed", {"body": "contains \\u0000"})
    if not isinstance(data, dict):
        raise ApiError(422, "validation_failed", "request body must be a JSON object", {"body": "expected an object"})
    try:  # `"\udab4"` is valid JSON but no text PostgreSQL (or anyone) can store
        json.dumps(data, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise ApiError(
            422, "validation_failed", "unpaired UTF-16 surrogate in a string", {"body": "invalid unicode"}
        ) from None
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise from_validation(exc, where="request body") from exc


def json_response(model: BaseModel, status: int = 200) -> web.Response:
    return web.json_response(text=model.model_dump_json(), status=status)
