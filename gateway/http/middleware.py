"""Errors as JSON, one unit of work per API request, bearer-token authentication."""

from __future__ import annotations

import json
import logging

from aiohttp import web

from core.agents.tokens import authenticate
from core.errors import Conflict, DomainError, Forbidden, Invalid, NotFound
from gateway.http.errors import ApiError, error_response
from gateway.http.keys import AGENT, DB, SESSION

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1/"
DOMAIN_STATUS: dict[type[DomainError], int] = {
    DomainError: 422, Invalid: 422, NotFound: 404, Conflict: 409, Forbidden: 403,
}
PUBLIC_PATHS = {"/api/v1/openapi.json"}


@web.middleware
async def errors(request: web.Request, handler):  # type: ignore[no-untyped-def]
    """Never a traceback to the client: every failure has the contract's JSON shape."""
    try:
        return await handler(request)
    except ApiError as exc:
        return exc.response()
    except DomainError as exc:
        return error_response(DOMAIN_STATUS[type(exc)], exc.code, exc.message, exc.fields)
    except json.JSONDecodeError:
        return error_response(400, "malformed_json", "request body is not valid JSON")
    except web.HTTPException as exc:
        if exc.status < 400 or not request.path.startswith(API_PREFIX):
            raise
        code = exc.reason.lower().replace(" ", "_")
        return error_response(exc.status, code, exc.reason, headers=dict(exc.headers) if exc.status == 405 else None)
    except Exception:
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal error; it has been logged")


@web.middleware
async def unit_of_work(request: web.Request, handler):  # type: ignore[no-untyped-def]
    """The request's one transaction: committed if the handler returns, rolled back if it raises."""
    if not request.path.startswith(API_PREFIX) or request.path in PUBLIC_PATHS:
        return await handler(request)
    async with request.app[DB].unit_of_work() as session:
        request[SESSION] = session
        return await handler(request)


@web.middleware
async def auth(request: web.Request, handler):  # type: ignore[no-untyped-def]
    if not request.path.startswith(API_PREFIX) or request.path in PUBLIC_PATHS:
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "missing bearer token")
    agent = await authenticate(request[SESSION], token.strip())
    if agent is None:
        raise ApiError(401, "unauthorized", "invalid or revoked token")
    request[AGENT] = agent
    return await handler(request)
