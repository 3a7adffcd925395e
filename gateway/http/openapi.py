"""The OpenAPI 3.1 document, built from the route tables and their pydantic models.

Descriptions are plain sentences (the docs page renders them), examples come from the
models' `json_schema_extra`, and every operation lists the errors it can answer with."""

from __future__ import annotations

import inspect
import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gateway.http.routing import EVERYONE, Operation

OPENAPI_KEY = web.AppKey("openapi", dict)
_PARAM = re.compile(r"{(\w+)}")
ERROR_SCHEMA = {
    "type": "object",
    "description": "Every error has this shape: a stable code, a sentence for people, and the fields to fix.",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string", "description": "validation_failed, not_found, conflict, forbidden, ..."},
                "message": {"type": "string", "description": "what went wrong, in plain words"},
                "fields": {
                    "type": "object", "additionalProperties": {"type": "string"},
                    "description": "each field to fix, with what is wrong with it",
                },
            },
            "required": ["code", "message", "fields"],
        }
    },
    "required": ["error"],
    "examples": [{"error": {
        "code": "validation_failed",
        "message": "invalid request body: channel: email tickets come only from mail; use web, api, chat or phone",
        "fields": {"channel": "email tickets come only from mail; use web, api, chat or phone"},
    }}],
}
# status ▸ (description, an example error)
ERRORS: dict[str, tuple[str, dict[str, Any]]] = {
    "400": ("The body is not valid JSON (or not valid multipart).",
            {"code": "malformed_json", "message": "request body is not valid JSON", "fields": {}}),
    "401": ("No token, or a token that is unknown or revoked.",
            {"code": "unauthorized", "message": "missing bearer token", "fields": {}}),
    "403": ("Your role may not do this.",
            {"code": "forbidden", "message": "a light agent may not do this", "fields": {}}),
    "404": ("No such object (or it was deleted).",
            {"code": "not_found", "message": "ticket not found", "fields": {}}),
    "409": ("The change conflicts with what is stored; the message says what to do.",
            {"code": "conflict", "message": "the group still has 3 tickets (group_id); move them first",
             "fields": {"id": "still used by 3 tickets"}}),
    "422": ("A parameter or field is invalid; `fields` names each one.",
            {"code": "validation_failed", "message": "invalid query parameters: status: Input should be "
             "'new', 'open', 'pending', 'on_hold', 'solved' or 'closed' (got 'exploded')",
             "fields": {"status": "Input should be 'new', 'open', 'pending', 'on_hold', 'solved' or 'closed'"}}),
    "429": ("Too many requests for this token; wait for the seconds in Retry-After.",
            {"code": "rate_limited", "message": "too many requests for this token; retry in 1.5s", "fields": {}}),
}
INTRO = """\
The helpdesk's HTTP API: tickets, their comments and attachments, customers, agents, groups,
organizations, macros, SLA policies, triggers, inbound mail records and notification deliveries.

**Authentication.** Send `Authorization: Bearer TOKEN` with every request. The first start of the
server prints an admin token (also in `DATA_DIR/admin-token`); `helpdesk token create` or
`POST /api/v1/tokens` makes more. Press *Authorize* above to try requests from this page.

**Errors.** Every error is `{"error": {"code", "message", "fields"}}`: 400 for a body that is not
JSON, 401 without a valid token, 403 when your role may not, 404 for an unknown object,
409 for a conflict (the message says what to do), 422 naming each invalid field, 429 when
sending too fast.

**Lists.** Lists return at most `limit` items (25 by default, 100 at most) and a `next_cursor`;
pass it back as `cursor` for the next page, with the same filters and sort. A filter takes
several values as `status=new,open` or `status=new&status=open` (any of them matches).

**Retries.** A POST with an `Idempotency-Key` header can be retried safely: the same key and
request return the first response.
"""


def build(operations: list[Operation], *, version: str) -> dict[str, Any]:
    wanted: list[tuple[type[BaseModel], Any]] = []
    for op in operations:
        for model, mode in ((op.response, "serialization"), (op.body, "validation")):
            if model is not None and (model, mode) not in wanted:
                wanted.append((model, mode))
    refs, defs = models_json_schema(wanted, ref_template="#/components/schemas/{model}")
    schemas = dict(defs.get("$defs", {}))
    schemas["Error"] = ERROR_SCHEMA
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        paths.setdefault(op.path, {})[op.method.lower()] = _operation(op, refs, schemas)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Helpdesk gateway API", "version": version, "description": INTRO},
        "paths": paths,
        "tags": [{"name": tag} for tag in dict.fromkeys(op.tag for op in operations)],
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "description": "an API token, as printed by helpdesk token create"}},
        },
    }


def _parameters(op: Operation, schemas: dict[str, Any]) -> list[dict[str, Any]]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"},
         "description": "the ticket's UUID or its number" if name == "ticket" else f"the {name.replace('_', ' ')}"}
        for name in _PARAM.findall(op.path)
    ]
    if op.query is not None:
        schema = op.query.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))  # enums the parameters refer to
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            param: dict[str, Any] = {"name": name, "in": "query", "required": name in required, "schema": prop}
            if "description" in prop:
                param["description"] = prop["description"]
            if _is_array(prop):  # a,b or repeated; the docs page sends it repeated
                param.update(style="form", explode=True)
            params.append(param)
    return params


def _is_array(prop: dict[str, Any]) -> bool:
    return prop.get("type") == "array" or any(p.get("type") == "array" for p in prop.get("anyOf", []))


def _errors(op: Operation, params: list[dict[str, Any]]) -> dict[str, Any]:
    statuses = []
    if op.body is not None or op.raw_body is not None:
        statuses.append("400")
    if op.auth:
        statuses += ["401", "429"]
        if op.roles != EVERYONE:
            statuses.append("403")
    if any(p["in"] == "path" for p in params):
        statuses.append("404")
    if op.method in ("POST", "PUT", "DELETE"):
        statuses.append("409")
    if params or op.body is not None:
        statuses.append("422")
    return {
        status: {
            "description": ERRORS[status][0],
            "content": {"application/json": {
                "schema": {"$ref": "#/components/schemas/Error"},
                "example": {"error": ERRORS[status][1]},
            }},
        }
        for status in sorted(statuses)
    }


def _operation(op: Operation, refs: dict[Any, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    params = _parameters(op, schemas)
    if op.response is not None:
        content = {"application/json": {"schema": refs[(op.response, "serialization")]}}
    elif op.statuses and op.statuses[0] == 204:
        content = None
    else:
        content = {op.content_type: {}}
    success = str(op.statuses[0]) if op.statuses else "200"
    ok: dict[str, Any] = {"description": {"201": "Created", "202": "Accepted", "204": "Done, nothing to return"}
                          .get(success, "OK")}
    if content is not None:
        ok["content"] = content
    responses: dict[str, Any] = {success: ok, **_errors(op, params)}
    summary = op.summary.replace("`", "")
    result: dict[str, Any] = {
        "summary": summary, "operationId": op.handler.__name__, "tags": [op.tag],
        "parameters": params, "responses": responses,
    }
    description = inspect.getdoc(op.handler)
    if description:
        result["description"] = description
    if op.auth:
        result["security"] = [{"bearer": []}]
        if op.roles != EVERYONE:
            who = " or ".join(sorted(role.value for role in op.roles))
            result["description"] = (result.get("description", "") + f"\n\nAllowed to: {who}.").strip()
    if op.body is not None:
        schema = refs[(op.body, "validation")] if (op.body, "validation") in refs else {}
        media: dict[str, Any] = {"schema": schema}
        extra = op.body.model_config.get("json_schema_extra")
        if isinstance(extra, dict) and extra.get("examples"):
            media["examples"] = {f"example {i + 1}": {"value": v} for i, v in enumerate(extra["examples"])}
        result["requestBody"] = {"required": True, "content": {"application/json": media}}
    elif op.raw_body is not None:
        result["requestBody"] = {
            "required": True,
            "content": {op.raw_body: {"schema": {"type": "string", "format": "binary"}}},
        }
    return result
