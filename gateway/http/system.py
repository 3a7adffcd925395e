"""Health, readiness, metrics, the OpenAPI document and its docs page."""

from __future__ import annotations

from aiohttp import web
from sqlalchemy import text

import logging

from core.db import driver_of
from gateway.http.keys import DB, METRICS
from gateway.http.openapi import OPENAPI_KEY
from gateway.http.routing import RouteTable
from search.pg_documents import queue_lag

log = logging.getLogger(__name__)

routes = RouteTable("system")

DOCS_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Helpdesk gateway API</title>
<style>body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}
code{background:#f4f4f4;padding:0 .2em}h2{margin-top:2rem}li{margin:.3rem 0}</style></head>
<body><h1>Helpdesk gateway API</h1>
<p>Machine-readable: <a href="/api/v1/openapi.json">/api/v1/openapi.json</a>.
Authenticate with <code>Authorization: Bearer TOKEN</code>.</p>
<ul id="ops"></ul>
<script>
fetch('/api/v1/openapi.json').then(r => r.json()).then(doc => {
  const list = document.getElementById('ops');
  for (const [path, ops] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(ops)) {
      const li = document.createElement('li');
      const code = document.createElement('code');
      code.textContent = method.toUpperCase() + ' ' + path;
      li.append(code, ' \u2014 ' + (op.summary || ''));
      list.append(li);
    }
  }
});
</script></body></html>
"""


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
    return web.Response(body=request.app[METRICS].render(), content_type="text/plain", charset="utf-8")


@routes.get("/api/v1/openapi.json", summary="This document", auth=False)
async def openapi(request: web.Request) -> web.Response:
    return web.json_response(request.app[OPENAPI_KEY])


@routes.get("/docs", summary="Human-readable API docs", auth=False, content_type="text/html")
async def docs(request: web.Request) -> web.Response:
    return web.Response(text=DOCS_PAGE, content_type="text/html")
