"""Routes for a `Crud` resource: list, get, create, update, delete, with roles and OpenAPI."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import web
from pydantic import BaseModel, create_model
from sqlalchemy.ext.asyncio import AsyncSession

from core.crud import Crud
from core.pagination import clamp_limit
from gateway.http.keys import SESSION
from gateway.http.routing import ADMIN, EVERYONE, RouteTable, json_response, parse_body, parse_query, with_article
from gateway.http.tickets import Page

# renders one object; the set names what `?include=` asked to embed
Render = Callable[[AsyncSession, Any, frozenset[str]], Awaitable[BaseModel]]


def crud_routes(
    crud: Crud[Any],
    *,
    plural: str,
    out: type[BaseModel],
    create: type[BaseModel],
    update: type[BaseModel],
    read_roles: frozenset = EVERYONE,
    write_roles: frozenset = ADMIN,
    render: Render | None = None,
    query: type[Page] = Page,
    one_query: type[BaseModel] | None = None,
    deletable: bool = True,
    on_change: Callable[[web.Request], None] = lambda request: None,
) -> RouteTable:
    routes = RouteTable(plural)
    base = f"/api/v1/{plural}"
    one = f"{base}/{{id}}"
    listing = create_model(f"{out.__name__}List", **{plural: (list[out], ...), "next_cursor": (str | None, None)})  # type: ignore[call-overload]

    async def to_out(session: AsyncSession, obj: Any, include: frozenset[str] = frozenset()) -> BaseModel:
        return await render(session, obj, include) if render else out.model_validate(obj)

    def included(q: BaseModel) -> frozenset[str]:
        return frozenset(getattr(q, "include", None) or ())

    async def list_items(request: web.Request) -> web.Response:
        q = parse_query(request, query)
        filters = q.model_dump(exclude={"limit", "cursor", "include"}, exclude_none=True)
        session = request[SESSION]
        rows, cursor = await crud.list(session, limit=clamp_limit(q.limit), cursor=q.decoded_cursor(), **filters)
        items = [await to_out(session, r, included(q)) for r in rows]
        return json_response(listing(**{plural: items, "next_cursor": cursor.encode() if cursor else None}))

    async def get_item(request: web.Request) -> web.Response:
        session = request[SESSION]
        q = parse_query(request, one_query) if one_query else None
        obj = await crud.get(session, request.match_info["id"])
        return json_response(await to_out(session, obj, included(q) if q else frozenset()))

    async def create_item(request: web.Request) -> web.Response:
        data = await parse_body(request, create)
        session = request[SESSION]
        created = await crud.create(session, data)
        on_change(request)
        return json_response(await to_out(session, created), status=201)

    async def update_item(request: web.Request) -> web.Response:
        data = await parse_body(request, update)
        session = request[SESSION]
        obj = await crud.update(session, await crud.get(session, request.match_info["id"]), data)
        on_change(request)
        return json_response(await to_out(session, obj))

    async def delete_item(request: web.Request) -> web.Response:
        session = request[SESSION]
        await crud.delete(session, await crud.get(session, request.match_info["id"]))
        on_change(request)
        return web.Response(status=204)

    singular = crud.name.replace(" ", "_")
    for handler, name in (
        (list_items, f"list_{plural}"), (get_item, f"get_{singular}"), (create_item, f"create_{singular}"),
        (update_item, f"update_{singular}"), (delete_item, f"delete_{singular}"),
    ):
        handler.__name__ = name
    routes.get(base, summary=f"List {plural}", response=listing, query=query, roles=read_roles)(list_items)
    routes.post(base, summary=f"Create {with_article(crud.name)}", body=create, response=out, roles=write_roles, statuses=(201,))(create_item)
    routes.get(one, summary=f"One {crud.name}", response=out, roles=read_roles, query=one_query)(get_item)
    routes.put(one, summary=f"Update {with_article(crud.name)}", body=update, response=out, roles=write_roles)(update_item)
    if deletable:
        routes.delete(one, summary=f"Delete {with_article(crud.name)}", roles=write_roles, statuses=(204,))(delete_item)
    return routes
