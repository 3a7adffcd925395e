"""Health, readiness, metrics, the OpenAPI document and its docs page."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import text
from swagger_ui_bundle import swagger_ui_path

import logging

from datetime import UTC, datetime

from core.db import driver_of
from core.sla.targets import compliance
from gateway.http.keys import DB, METRICS
from gateway.http.openapi import OPENAPI_KEY
from gateway.http.routing import RouteTable
from search.pg_documents import queue_lag

log = logging.getLogger(__name__)

routes = RouteTable("system")

# Swagger UI from the swagger-ui-bundle-v2 wheel: served by us, so the page works offline
# /metrics' SLA totals: every target there is (the figures of GET /sla/compliance without a window)
ALL_TIME = (datetime(1970, 1, 1, tzinfo=UTC), datetime(9999, 1, 1, tzinfo=UTC))
DOCS_ASSETS = "/docs/assets"
DOCS_PAGE = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Helpdesk gateway API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="{DOCS_ASSETS}/swagger-ui.css">
<link rel="icon" type="image/png" href="{DOCS_ASSETS}/favicon-32x32.png">
</head><body><noscript>This reference needs JavaScript; the document itself is
<a href="/api/v1/openapi.json">/api/v1/openapi.json</a>.</noscript><div id="swagger-ui"></div>
<script src="{DOCS_ASSETS}/swagger-ui-bundle.js"></script>
<script src="/docs/init.js"></script>
</body></html>
"""
DOCS_INIT = """window.ui = SwaggerUIBundle({
  url: '/api/v1/openapi.json', dom_id: '#swagger-ui', deepLinking: true,
  persistAuthorization: true, displayRequestDuration: true, tryItOutEnabled: false,
  defaultModelsExpandDepth: 0, docExpansion: 'list', filter: true,
});
"""
# the page loads only our own files; Swagger UI sets inline styles and shows data: icons
DOCS_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
}


def add_docs_assets(app: web.Application) -> None:
    app.router.add_static(DOCS_ASSETS, swagger_ui_path)  # type: ignore[arg-type]


@routes.get("/healthz", summary="The process is alive", auth=False)
async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok"})


@routes.get("/readyz", summary="The database is reachable", auth=False)
async def readyz(request: web.Request) -> web.Response:
    try:
        async with request.app[DB].engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
    except Exception as exc:
        return web.json_response({"status": "unavailable", "database": str(exc)[:200]}, status=503)
    return web.json_response({"status": "ok"})


@routes.get("/metrics", summary="Prometheus metrics", auth=False, content_type="text/plain")
async def metrics(request: web.Request) -> web.Response:
    registry = request.app[METRICS]
    try:  # read where it is true for every indexer at once: the shared queue
        async with request.app[DB].read_only() as session, driver_of(session) as connection:
            registry.search_lag.set(await queue_lag(connection))
    except Exception:  # no database, no lag figure: the rest of the metrics still answer
        log.debug("search lag not measured", exc_info=True)
    try:  # the SLA totals of every process, where they are kept
        async with request.app[DB].read_only() as session:
            registry.sla_targets.figures = await compliance(session, start=ALL_TIME[0], end=ALL_TIME[1])
    except Exception:
        log.debug("SLA totals not read", exc_info=True)
    return web.Response(body=request.app[METRICS].render(), content_type="text/plain", charset="utf-8")


@routes.get("/api/v1/openapi.json", summary="This document", auth=False)
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI_KEY])


@routes.get("/docs", summary="This reference, interactive (Swagger UI)", auth=False, content_type="text/html")
async def docs(request: web.Request) -> web.Response:
    return web.Response(text=DOCS_PAGE, content_type="text/html", headers=DOCS_HEADERS)


@routes.get("/docs/init.js", summary="The docs page's set-up script", auth=False,
            content_type="application/javascript")
async def docs_init(request: web.Request) -> web.Response:
    return web.Response(text=DOCS_INIT, content_type="application/javascript", headers=DOCS_HEADERS)
