"""Errors as JSON, one unit of work per API request, bearer-token authentication."""

from __future__ import annotations

import asyncio
import json
import logging

import asyncpg
from aiohttp import web
from aiohttp.streams import StreamReader
from sqlalchemy.exc import DBAPIError, IntegrityError, InterfaceError, OperationalError

from core.agents.tokens import authenticate, hash_token
from core.attachments import BlobMissing, BlobUnavailable
from core.db import ConnectionLost
from core.pagination import BadCursor
from core.idempotency import IdempotencyKey, fingerprint, lock_and_find
from core.errors import Conflict, DomainError, Forbidden, Invalid, NotFound, plain_conflict
from gateway.http.errors import ApiError, error_response
from gateway.http.keys import AGENT, AUTH_CHANGED, AUTH_CHANGES, AUTH_FAILURES, DB, RATE_LIMITER, SESSION, TOKEN_CACHE

log = logging.getLogger(__name__)

API_PREFIX = "/api/v1/"
DOMAIN_STATUS: dict[type[DomainError], int] = {
    DomainError: 422, Invalid: 422, NotFound: 404, Conflict: 409, Forbidden: 403,
}
PUBLIC_PATHS = {"/api/v1/openapi.json"}


def database_unavailable(exc: BaseException) -> bool:
    """The database cannot be reached (down, restarting, refusing): a 503, as SMTP's 451."""
    if isinstance(exc, (ConnectionLost, OSError, TimeoutError, asyncpg.PostgresConnectionError,
                        asyncpg.CannotConnectNowError, asyncpg.InterfaceError)):
        return True
    if isinstance(exc, (OperationalError, InterfaceError)):
        return True
    if isinstance(exc, DBAPIError):
        return exc.connection_invalidated or database_unavailable(exc.orig) if exc.orig else exc.connection_invalidated
    cause = exc.__cause__ or exc.__context__
    return cause is not None and cause is not exc and isinstance(cause, (OSError, asyncpg.PostgresConnectionError))


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
    except BadCursor as exc:  # e.g. a cursor made for another sort
        return error_response(422, "validation_failed", str(exc), {"cursor": str(exc)})
    except (IntegrityError, asyncpg.IntegrityConstraintViolationError) as exc:
        # a unique or foreign key the database enforced (e.g. a race past a service's check)
        conflict = plain_conflict(exc)
        return error_response(DOMAIN_STATUS[type(conflict)], conflict.code, conflict.message, conflict.fields)
    except BlobMissing as exc:
        log.warning("attachment content missing on %s: %s", request.path, exc)
        return error_response(404, "attachment_content_missing", str(exc))
    except BlobUnavailable as exc:
        log.warning("attachment store unavailable on %s: %s", request.path, exc)
        return error_response(503, "attachment_store_unavailable", f"{exc}; retry later",
                              headers={"Retry-After": "5"})
    except web.HTTPException as exc:
        if exc.status < 400 or not request.path.startswith(API_PREFIX):
            raise
        code = exc.reason.lower().replace(" ", "_")
        kept = {k: v for k, v in exc.headers.items() if k in ("Allow", "Retry-After")}
        return error_response(exc.status, code, exc.reason, headers=kept or None)
    except ConnectionResetError:  # the client went away mid-request: nothing to answer
        log.info("client disconnected during %s %s", request.method, request.path)
        raise
    except RecursionError:  # a structure nested deeper than any handler can walk
        return error_response(400, "malformed_json", "request is nested too deeply")
    except Exception as exc:
        if database_unavailable(exc):
            log.warning("database unavailable during %s %s: %s", request.method, request.path, exc)
            return error_response(503, "unavailable", "the database is unavailable; try again shortly",
                                  headers={"Retry-After": "5"})
        log.exception("unhandled error on %s %s", request.method, request.path)
        return error_response(500, "internal_error", "internal error; it has been logged")


@web.middleware
async def unit_of_work(request: web.Request, handler):  # type: ignore[no-untyped-def]
    """The request's one transaction: committed if the handler returns, rolled back if it raises.

    GET and HEAD read without a transaction of their own (no BEGIN/COMMIT round trips)."""
    if not request.path.startswith(API_PREFIX) or request.path in PUBLIC_PATHS:
        return await handler(request)
    db = request.app[DB]
    scope = db.read_only() if request.method in ("GET", "HEAD") else db.unit_of_work()
    async with scope as session:
        request[SESSION] = session
        response = await handler(request)
    if request.get(AUTH_CHANGED):
        # after the commit, or another process could re-read the old state and cache it again
        await request.app[AUTH_CHANGES].announce()
    return response


def auth_changed(request: web.Request) -> None:
    """This request revokes tokens or changes an agent: no process may trust its cache."""
    request.app[TOKEN_CACHE].clear()  # this process at once; all, again, after the commit
    request[AUTH_CHANGED] = True


@web.middleware
async def auth(request: web.Request, handler):  # type: ignore[no-untyped-def]
    if not request.path.startswith(API_PREFIX) or request.path in PUBLIC_PATHS:
        return await handler(request)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "unauthorized", "missing bearer token")
    token_hash = hash_token(token.strip())
    cache = request.app[TOKEN_CACHE]
    principal = cache.get(token_hash)
    if principal is None:
        failures, client = request.app[AUTH_FAILURES], request.remote or ""
        if (wait := failures.waiting(client)) > 0:  # guessing tokens: no database work for it
            raise ApiError(429, "rate_limited", f"too many invalid tokens from your address; retry in {wait:.1f}s",
                           headers={"Retry-After": failures.retry_after(wait)})
        principal = await authenticate(request[SESSION], token_hash)
        if principal is None:
            failures.take(client)
            failures.forget_some()
            raise ApiError(401, "unauthorized", "invalid or revoked token")
        cache.put(token_hash, principal)
    limiter = request.app[RATE_LIMITER]
    if limiter.enabled and (wait := await limiter.acquire(token_hash)) > 0:
        raise ApiError(
            429, "rate_limited", f"too many requests for this token; retry in {wait:.1f}s",
            headers={"Retry-After": limiter.retry_after(wait)},
        )
    request[AGENT] = principal
    return await handler(request)


IDEMPOTENT_REPLAY = "Idempotent-Replayed"


def replayable(request: web.Request, body: bytes) -> web.Request:
    """The request with its body, already read, readable again by the multipart reader."""
    stream = StreamReader(request.protocol, 2**16, loop=asyncio.get_running_loop())
    stream.feed_data(body)
    stream.feed_eof()
    request._payload = stream  # noqa: SLF001 - aiohttp has no public way to re-feed a read body
    return request


@web.middleware
async def idempotency(request: web.Request, handler):  # type: ignore[no-untyped-def]
    """A POST retried with the same `Idempotency-Key` gets the first response, not a second effect.

    Runs inside the request's transaction: the stored response commits with the change it
    describes, or not at all."""
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or key is None or AGENT not in request:
        return await handler(request)
    if not 1 <= len(key) <= 255 or not key.isprintable():
        raise ApiError(422, "validation_failed", "bad Idempotency-Key",
                       {"Idempotency-Key": "1 to 255 printable characters"})
    # the whole body, multipart too: two uploads of the same length are not the same request
    body = await request.read()
    if request.content_type.startswith("multipart/"):
        request = replayable(request, body)
    print_ = fingerprint(request.method, request.path, request.query_string, body)
    agent = request[AGENT]
    stored = await lock_and_find(request[SESSION], agent.id, key)
    if stored is not None:
        if stored.fingerprint != print_:
            raise ApiError(422, "idempotency_key_reused",
                           "this Idempotency-Key was used with a different request",
                           {"Idempotency-Key": "already used for another request"})
        return web.Response(
            status=stored.status, body=stored.body, content_type=stored.content_type,
            headers={IDEMPOTENT_REPLAY: "true"},
        )
    response = await handler(request)
    if isinstance(response, web.Response) and 200 <= response.status < 300:
        request[SESSION].add(IdempotencyKey(
            agent_id=agent.id, key=key, fingerprint=print_, status=response.status,
            content_type=response.content_type, body=response.body or b"",
        ))
    return response
