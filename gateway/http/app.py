"""The aiohttp application factory: nothing connects at import time."""

from __future__ import annotations

from collections.abc import AsyncIterator
from functools import partial
from importlib.metadata import PackageNotFoundError, version

from aiohttp import web
from redis.asyncio import Redis

from core.attachments import AttachmentStore
from core.attachments.fs import FileStore
from core.config import Settings
from core.db import Database
from core.ingest.intake import Intake
from core.metrics import Metrics
from gateway.http import (
    admin, deliveries, inbound, middleware, openapi, people, satisfaction, search, sla, statistics, system,
    ticket_changes, tickets,
)
from core.agents.tokens import TokenCache
from core.shared_state import INVALIDATE_CHANNEL, AuthChanges, Broadcast, SharedRateLimiter, connect
from gateway.http.keys import (
    AUTH_CHANGES, AUTH_FAILURES, DB, INTAKE, METRICS, RATE_LIMITER, SEARCH, SETTINGS, STORE, TOKEN_CACHE,
)
from gateway.http.ratelimit import RateLimiter
from search.service import SearchService, backend_from_settings

# ticket_changes and statistics first: `/tickets/update_many` and `/tickets/statistics` must win
# over `/tickets/{ticket}`
ROUTE_TABLES = (
    ticket_changes.routes, statistics.routes, tickets.routes, *people.ROUTES, *admin.ROUTES, inbound.routes,
    deliveries.routes, sla.routes, satisfaction.routes, search.routes, system.routes,
)


def _version() -> str:
    try:
        return version("helpdesk-gateway")
    except PackageNotFoundError:
        return "0.0.0"


async def _search_backend(app: web.Application):  # type: ignore[no-untyped-def]
    yield
    await app[SEARCH].backend.close()
async def _redis(client: Redis, changes: AuthChanges, app: web.Application) -> AsyncIterator[None]:
    assert changes.broadcast is not None
    await changes.broadcast.start()
    yield
    await changes.broadcast.stop()
    await client.aclose()


def create_app(
    settings: Settings, db: Database, metrics: Metrics, *, intake: Intake,
    store: AttachmentStore | None = None,
) -> web.Application:
    app = web.Application(
        middlewares=[
            middleware.errors, middleware.unit_of_work, middleware.auth, middleware.idempotency,
        ],
        client_max_size=settings.max_message_bytes + 1024 * 1024,
    )
    app[SETTINGS] = settings
    app[DB] = db
    app[METRICS] = metrics
    app[STORE] = store or FileStore(settings.attachments_dir)
    app[INTAKE] = intake
    cache = app[TOKEN_CACHE] = TokenCache(ttl=settings.api_auth_cache_seconds)
    local = RateLimiter(per_minute=settings.api_rate_per_minute, burst=settings.api_rate_burst)
    app[RATE_LIMITER] = local
    app[AUTH_CHANGES] = AuthChanges(cache)
    if settings.redis_url:  # one limit and one cache truth for every API process
        client = connect(settings.redis_url)  # connects on first use, not here
        app[RATE_LIMITER] = SharedRateLimiter(
            client, per_minute=settings.api_rate_per_minute, burst=settings.api_rate_burst, local=local)
        app[AUTH_CHANGES] = AuthChanges(
            cache, Broadcast(settings.redis_url, INVALIDATE_CHANNEL, cache.clear, client))
        app.cleanup_ctx.append(partial(_redis, client, app[AUTH_CHANGES]))
    app[SEARCH] = SearchService(backend_from_settings(settings), metrics)
    app.cleanup_ctx.append(_search_backend)
    app[AUTH_FAILURES] = RateLimiter(per_minute=settings.api_auth_failures_per_minute, burst=settings.api_auth_failures_burst)
    for table in ROUTE_TABLES:
        table.add_to(app)
    system.add_docs_assets(app)
    app[openapi.OPENAPI_KEY] = openapi.build(
        [op for table in ROUTE_TABLES for op in table.operations], version=_version()
    )
    return app
