"""The aiohttp application factory: nothing connects at import time."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from aiohttp import web

from core.attachments import AttachmentStore
from core.config import Settings
from core.db import Database
from core.ingest.intake import Intake
from core.metrics import Metrics
from gateway.http import (
    admin, deliveries, inbound, middleware, openapi, people, satisfaction, sla, statistics, system, ticket_changes, tickets,
)
from core.agents.tokens import TokenCache
from gateway.http.keys import DB, INTAKE, METRICS, RATE_LIMITER, SETTINGS, STORE, TOKEN_CACHE
from gateway.http.ratelimit import RateLimiter

# ticket_changes and statistics first: `/tickets/update_many` and `/tickets/statistics` must win
# over `/tickets/{ticket}`
ROUTE_TABLES = (
    ticket_changes.routes, statistics.routes, tickets.routes, *people.ROUTES, *admin.ROUTES, inbound.routes,
    deliveries.routes, sla.routes, satisfaction.routes, system.routes,
)


def _version() -> str:
    try:
        return version("helpdesk-gateway")
    except PackageNotFoundError:
        return "0.0.0"


def create_app(
    settings: Settings, db: Database, metrics: Metrics, *, intake: Intake
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
    app[STORE] = AttachmentStore(settings.attachments_dir)
    app[INTAKE] = intake
    app[TOKEN_CACHE] = TokenCache(ttl=settings.api_auth_cache_seconds)
    app[RATE_LIMITER] = RateLimiter(per_minute=settings.api_rate_per_minute, burst=settings.api_rate_burst)
    for table in ROUTE_TABLES:
        table.add_to(app)
    app[openapi.OPENAPI_KEY] = openapi.build(
        [op for table in ROUTE_TABLES for op in table.operations], version=_version()
    )
    return app
