"""Route tables that know their pydantic models, so the OpenAPI document is derived, not written."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from gateway.http.errors import from_validation

M = TypeVar("M", bound=BaseModel)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


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
    content_type: str = "application/json"
    statuses: tuple[int, ...] = ()  # success statuses other than 200
    raw_body: str | None = None  # content type of a non-JSON request body


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

    def add_to(self, app: web.Application) -> None:
        for op in self.operations:
            app.router.add_route(op.method, op.path, op.handler)


def parse_query(request: web.Request, model: type[M]) -> M:
    try:
        return model.model_validate(dict(request.query))
    except ValidationError as exc:
        raise from_validation(exc, where="query parameters") from exc
