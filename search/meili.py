"""Meilisearch, for desks whose search outgrows one PostgreSQL (`HELPDESK_MEILI_URL`).

The client is `meilisearch-python-sdk`'s AsyncClient: natively async (httpx), so a search costs
no thread hop, and it awaits tasks for us. The master key stays in this process: nothing of
Meilisearch is reachable through our API but the searches it answers.

Documents carry ids, not names (see resolve.py); every filter is rendered here from the typed
query with field names from `FILTERABLE` and every value quoted and escaped.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

from core.config import Settings
from core.db import Database, asyncpg_dsn
from search.backend import (
    FACETS,
    MARK_END,
    MARK_START,
    BadCursor,
    Progress,
    TicketHit,
    TicketPage,
    decode_cursor,
    encode_cursor,
    marked_to_html,
)
from search.documents import SELECT_DOCUMENTS
from search.resolve import DATE_FIELDS, FIELDS, DateFilter, Filter, Resolved

log = logging.getLogger(__name__)

SEARCHABLE = ["subject", "body", "requester_name", "requester_email", "tags"]  # in rank order
FILTERABLE = sorted({
    "status", "priority", "priority_rank", "type", "channel", "tags", "group_id", "assignee_id",
    "requester_id", "organization_id", "created_at", "updated_at", "solved_at",
})
# qualifier field ▸ document attribute (priority is compared by rank)
ATTRIBUTES = {**{f: f for f in FIELDS.values()}, "priority": "priority_rank"}
FACET_ATTRIBUTES = {"status": "status", "priority": "priority", "channel": "channel", "group": "group_id"}
TASK_TIMEOUT_MS = 60_000
PUSH_BATCH = 2_000


def settings_payload(max_total_hits: int) -> dict[str, Any]:
    """The index settings, in Meilisearch's own JSON (applied on start and on reindex)."""
    return {
        "searchableAttributes": SEARCHABLE,
        "filterableAttributes": FILTERABLE,
        "sortableAttributes": ["created_at", "updated_at"],
        "displayedAttributes": ["id", "subject", "body", "updated_at"],
        # attribute: a subject match above a body match; the newest last, on ties
        "rankingRules": ["words", "typo", "proximity", "attribute", "exactness", "updated_at:desc"],
        "typoTolerance": {"enabled": True, "minWordSizeForTypos": {"oneTypo": 5, "twoTypos": 9}},
        "pagination": {"maxTotalHits": max_total_hits},
        "faceting": {"maxValuesPerFacet": 1000},
    }


def quote(value: str) -> str:
    """A filter string literal: double-quoted, backslashes and quotes escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_filter(f: Filter) -> str | None:
    """None: no restriction (a negated empty set)."""
    attribute = ATTRIBUTES.get(f.field)
    if attribute is None or attribute not in FILTERABLE:
        raise ValueError(f"unknown search field {f.field!r}")
    present = [v for v in f.values if v is not None]
    tests = []
    if present:
        literals = ", ".join(str(v) if isinstance(v, int) else quote(str(v)) for v in present)
        tests.append(f"{attribute} IN [{literals}]")
    if None in f.values:
        tests.append(f"{attribute} IS EMPTY" if attribute == "tags" else f"{attribute} IS NULL")
    if not tests:
        return None if f.negated else "priority_rank = -1"  # nothing can match
    positive = " OR ".join(tests)
    return f"NOT ({positive})" if f.negated else f"({positive})"


def render_date(d: DateFilter) -> str:
    if d.field not in DATE_FIELDS.values() or d.op not in (">", ">=", "<", "<="):
        raise ValueError(f"unknown date filter {d.field} {d.op}")
    assert isinstance(d.value, datetime)
    test = f"{d.field} {d.op} {d.value.timestamp():.6f}"
    return f"NOT ({test})" if d.negated else test


def render_text(query: Resolved) -> str:
    """Meilisearch's own query syntax: phrases in quotes, `-` before what must not match."""
    parts = []
    for term in query.text:
        text = term.text.replace('"', " ")
        part = f'"{text}"' if term.phrase else text
        parts.append(f"-{part}" if term.negated else part)
    return " ".join(parts)


def document(row: asyncpg.Record) -> dict[str, Any]:
    def stamp(value: datetime | None) -> float | None:
        return value.timestamp() if value else None

    return {
        "id": str(row["id"]), "number": row["number"], "subject": row["subject"], "body": row["body"],
        "requester_name": row["requester_name"], "requester_email": row["requester_email"],
        "tags": list(row["tags"]), "status": row["status"], "priority": row["priority"],
        "priority_rank": row["priority_rank"], "type": row["type"], "channel": row["channel"],
        **{k: str(row[k]) if row[k] else None
           for k in ("group_id", "assignee_id", "requester_id", "organization_id")},
        "created_at": stamp(row["created_at"]), "updated_at": stamp(row["updated_at"]),
        "solved_at": stamp(row["solved_at"]),
    }


class MeiliSearch:
    name = "meilisearch"

    def __init__(self, url: str, key: str | None, *, prefix: str = "helpdesk_", max_total_hits: int = 100_000) -> None:
        from meilisearch_python_sdk import AsyncClient

        self.client = AsyncClient(url, key, timeout=30)
        self.uid = f"{prefix}tickets"
        self.max_total_hits = max_total_hits
        self._ready = False

    @classmethod
    def from_settings(cls, settings: Settings) -> MeiliSearch:
        assert settings.meili_url
        return cls(settings.meili_url, settings.meili_key, prefix=settings.meili_index_prefix,
                   max_total_hits=settings.meili_max_total_hits)

    async def start(self) -> None:
        await self._prepare(self.uid)

    async def close(self) -> None:
        await self.client.aclose()

    async def _prepare(self, uid: str) -> None:
        from meilisearch_python_sdk.models.settings import MeilisearchSettings

        index = await self.client.get_or_create_index(uid, primary_key="id")
        body = MeilisearchSettings.model_validate(settings_payload(self.max_total_hits))
        await self._wait(await index.update_settings(body))
        self._ready = True

    async def _wait(self, task: Any) -> None:
        result = await self.client.wait_for_task(task.task_uid, timeout_in_ms=TASK_TIMEOUT_MS)
        if result.status != "succeeded":
            raise RuntimeError(f"Meilisearch task {task.task_uid} {result.status}: {result.error}")

    # ---- indexing ----

    async def index(self, connection: asyncpg.Connection, ticket_ids: Sequence[uuid.UUID]) -> None:
        rows = await connection.fetch(SELECT_DOCUMENTS, list(ticket_ids))
        await self._push(self.uid, rows)
        live = {r["id"] for r in rows}
        gone = [str(t) for t in ticket_ids if t not in live]
        if gone:
            await self._wait(await self.client.index(self.uid).delete_documents(gone))

    async def _push(self, uid: str, rows: Sequence[asyncpg.Record]) -> None:
        if not self._ready:
            await self._prepare(self.uid)
        if rows:
            index = self.client.index(uid)
            await self._wait(await index.add_documents([document(r) for r in rows], primary_key="id"))

    async def rebuild(self, db: Database, progress: Progress) -> int:
        """A new index filled beside the live one, then swapped with it (searches go on)."""
        aside = f"{self.uid}_rebuild"
        await self.client.delete_index_if_exists(aside)
        await self._prepare(self.uid)
        await self._prepare(aside)
        connection = await asyncpg.connect(asyncpg_dsn(db.url))
        done = 0
        try:
            total = await connection.fetchval("SELECT count(*) FROM tickets WHERE deleted_at IS NULL")
            started = await connection.fetchval("SELECT clock_timestamp()")
            progress(0, total)
            last = uuid.UUID(int=0)
            while True:
                ids = [r["id"] for r in await connection.fetch(
                    "SELECT id FROM tickets WHERE deleted_at IS NULL AND id > $1 ORDER BY id LIMIT $2",
                    last, PUSH_BATCH,
                )]
                if not ids:
                    break
                await self._push(aside, await connection.fetch(SELECT_DOCUMENTS, ids))
                last, done = ids[-1], done + len(ids)
                progress(done, total)
            await self._wait(await self.client.swap_indexes([(self.uid, aside)]))
            # whatever changed during the build is indexed again into the new index
            await connection.execute(
                "INSERT INTO search_queue (ticket_id, queued_at, event_at)"
                " SELECT id, clock_timestamp(), updated_at FROM tickets WHERE updated_at >= $1"
                " ON CONFLICT (ticket_id) DO UPDATE SET queued_at = EXCLUDED.queued_at",
                started,
            )
        finally:
            await connection.close()
        await self.client.delete_index_if_exists(aside)
        return done

    # ---- querying ----

    async def search(
        self, connection: asyncpg.Connection, query: Resolved, *, limit: int, cursor: str | None,
        fingerprint: str,
    ) -> TicketPage:
        page, per_page = 1, limit
        if cursor is not None:
            try:
                page, per_page = (int(v) for v in decode_cursor(cursor, fingerprint))
            except (ValueError, TypeError) as exc:
                raise BadCursor(str(exc) if isinstance(exc, BadCursor) else "cursor is not one this server issued") from exc
        filters = [r for r in (render_filter(f) for f in query.filters) if r is not None]
        filters += [render_date(d) for d in query.dates]
        result = await self.client.index(self.uid).search(
            render_text(query) or None, filter=" AND ".join(filters) or None,
            facets=list(FACET_ATTRIBUTES.values()), hits_per_page=per_page, page=page,
            attributes_to_retrieve=["id", "subject", "body"], attributes_to_highlight=["subject", "body"],
            attributes_to_crop=["body"], crop_length=30, crop_marker=" … ",
            highlight_pre_tag=MARK_START, highlight_post_tag=MARK_END,
            matching_strategy="all", show_ranking_score=True,
            sort=None if query.has_text else ["updated_at:desc"],
        )
        hits = [_hit(h) for h in result.hits]
        total = result.total_hits or 0
        next_cursor = encode_cursor([page + 1, per_page], fingerprint) if page * per_page < total else None
        return TicketPage(
            hits=hits, count=total, count_approximate=total >= self.max_total_hits,
            facets=_facets(result.facet_distribution or {}, total), next_cursor=next_cursor,
        )


def _hit(hit: dict[str, Any]) -> TicketHit:
    formatted = hit.get("_formatted") or {}
    subject, body = str(formatted.get("subject") or ""), str(formatted.get("body") or "")
    text = subject if MARK_START in subject else body
    return TicketHit(uuid.UUID(str(hit["id"])), float(hit.get("_rankingScore") or 0.0), marked_to_html(text))


def _facets(distribution: dict[str, dict[str, int]], total: int) -> dict[str, dict[Any, int]]:
    facets: dict[str, dict[Any, int]] = {}
    for name in FACETS:
        counts: dict[Any, int] = dict(distribution.get(FACET_ATTRIBUTES[name]) or {})
        if name == "group" and (missing := total - sum(counts.values())) > 0:
            counts[None] = missing  # tickets without a group have no facet value
        facets[name] = counts
    return facets
