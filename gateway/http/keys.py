"""Typed keys for what the app and each request carry."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession

from core.agents.tokens import Principal, TokenCache
from core.attachments import AttachmentStore
from core.config import Settings
from core.db import Database
from core.ingest.intake import Intake
from core.metrics import Metrics
from core.shared_state import AuthChanges
from gateway.http.ratelimit import Limiter, RateLimiter
from search.service import SearchService

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", Database)
METRICS = web.AppKey("metrics", Metrics)
STORE = web.AppKey("store", AttachmentStore)  # type: ignore[type-abstract]
INTAKE = web.AppKey("intake", Intake)
TOKEN_CACHE = web.AppKey("token_cache", TokenCache)
RATE_LIMITER = web.AppKey("rate_limiter", Limiter)  # type: ignore[type-abstract]
AUTH_CHANGES = web.AppKey("auth_changes", AuthChanges)
SEARCH = web.AppKey("search", SearchService)
# invalid bearer tokens, per client address: guessing tokens is throttled before the database
AUTH_FAILURES = web.AppKey("auth_failures", RateLimiter)

# request-scoped
SESSION = web.RequestKey("session", AsyncSession)
AGENT = web.RequestKey("agent", Principal)
AUTH_CHANGED = web.RequestKey("auth_changed", bool)  # announced once the request commits
