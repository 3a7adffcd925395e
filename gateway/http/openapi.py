"""The OpenAPI 3.1 document, built from the route tables and their pydantic models."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web
from pydantic import BaseModel
from pydantic.json_schema import models_json_schema

from gateway.http.routing import Operation

OPENAPI_KEY = web.AppKey("openapi", dict)
_PARAM = re.compile(r"{(\w+)}")
ERROR_SCHEMA = {
    "type": "object",
    "properties": {
        "error": {
            "type": "object",
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "fields": {"type": "object", "additionalProperties": {"type": "string"}},
            },
            "required": ["code", "message", "fields"],
        }
    },
    "required": ["error"],
}


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
        "info": {"title": "Helpdesk gateway API", "version": version},
        "paths": paths,
        "components": {
            "schemas": schemas,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


def _operation(op: Operation, refs: dict[Any, Any], schemas: dict[str, Any]) -> dict[str, Any]:
    params: list[dict[str, Any]] = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PARAM.findall(op.path)
    ]
    if op.query is not None:
        schema = op.query.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))  # enums the parameters refer to
        required = set(schema.get("required", []))
        for name, prop in schema.get("properties", {}).items():
            params.append({"name": name, "in": "query", "required": name in required, "schema": prop})
    if op.response is not None:
        content = {"application/json": {"schema": refs[(op.response, "serialization")]}}
    else:
        content = {op.content_type: {}}
    error = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    success = str(op.statuses[0]) if op.statuses else "200"
    responses: dict[str, Any] = {success: {"description": "OK", "content": content}}
    if op.auth:
        responses["401"] = {"description": "Missing or invalid token", **error}
    if params:
        responses["404"] = {"description": "Not found", **error}
        responses["422"] = {"description": "Invalid input", **error}
    result: dict[str, Any] = {
        "summary": op.summary, "operationId": op.handler.__name__, "tags": [op.tag],
        "parameters": params, "responses": responses,
    }
    if op.auth:
        result["security"] = [{"bearer": []}]
    if op.body is not None:
        schema = refs[(op.body, "validation")] if (op.body, "validation") in refs else {}
        result["requestBody"] = {"required": True, "content": {"application/json": {"schema": schema}}}
    elif op.raw_body is not None:
        result["requestBody"] = {
            "required": True,
            "content": {op.raw_body: {"schema": {"type": "string", "format": "binary"}}},
        }
    return result
