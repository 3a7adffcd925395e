"""Search as the API offers it: parse ▸ resolve ▸ the backend ▸ the objects as the API shows them."""

from __future__ import annotations

import re
import uuid
from dataclasses import replace

import asyncpg
from sqlalchemy.ext.asyncio import AsyncSession

from core.config import Settings
from core.customers.schemas import CustomerOut
from core.db import driver_of
from core.metrics import Metrics
from core.tickets.views import VIEW_COLUMNS, ticket_values
from search.backend import (
    MARK_END,
    MARK_START,
    BadCursor,
    SearchBackend,
    TicketPage,
    decode_cursor,
    encode_cursor,
    marked_to_html,
    query_fingerprint,
)
from search.postgres import PostgresSearch
from search.query import QueryError, normalize, parse
from search.resolve import Filter, resolve
from search.schemas import CustomerResult, SearchResults, TicketResult

_TICKETS = (
    f"SELECT {', '.join(c.key for c in VIEW_COLUMNS)} FROM tickets"
    " WHERE id = ANY($1::uuid[]) AND deleted_at IS NULL"
)
_CUSTOMER_TEXT = "helpdesk_unaccent(lower(name || ' ' || email))"
_CUSTOMER_COLUMNS = ", ".join(CustomerOut.model_fields)


def backend_from_settings(settings: Settings) -> SearchBackend:
    if settings.meili_url:
        from search.meili import MeiliSearch  # imported only when configured

        return MeiliSearch.from_settings(settings)
    return PostgresSearch()


class SearchService:
    def __init__(self, backend: SearchBackend, metrics: Metrics | None = None) -> None:
        self.backend = backend
        self.metrics = metrics

    async def tickets(
        self, session: AsyncSession, q: str, *, viewer_id: uuid.UUID | None, limit: int,
        cursor: str | None = None, filters: tuple[Filter, ...] = (),
    ) -> SearchResults:
        """Raises `QueryError` (the query cannot mean anything) or `BadCursor`."""
        query = parse(q)
        fingerprint = query_fingerprint("ticket", q, repr(filters))
        async with driver_of(session) as connection:
            resolved = await resolve(connection, query, viewer_id=viewer_id)
            if filters:
                resolved = replace(resolved, filters=resolved.filters + filters)
            if query.empty and not filters:
                return SearchResults(results=[], count=0, warnings=[*resolved.warnings, "nothing to search for"])
            page = await self.backend.search(
                connection, resolved, limit=limit, cursor=cursor, fingerprint=fingerprint
            )
            results = await self._ticket_results(connection, page)
            facets = await _named_groups(connection, page.facets, page.group_names)
        if self.metrics is not None:
            self.metrics.search_queries.labels(self.backend.name, "ticket").inc()
        return SearchResults(
            results=results, count=page.count, count_approximate=page.count_approximate,
            facets=facets, next_cursor=page.next_cursor, warnings=list(resolved.warnings),
        )

    async def _ticket_results(self, connection: asyncpg.Connection, page: TicketPage) -> list[TicketResult]:
        """The tickets as they are now (a ticket deleted since it was indexed is left out); read
        here unless the backend read them with its hits."""
        unread = [h.ticket_id for h in page.hits if h.ticket is None]
        rows = {r["id"]: r for r in await connection.fetch(_TICKETS, unread)} if unread else {}
        results = []
        for hit in page.hits:
            row = hit.ticket if hit.ticket is not None else rows.get(hit.ticket_id)
            if row is not None:
                results.append(TicketResult.model_validate(
                    {**ticket_values(row), "score": hit.score, "highlight": hit.highlight}
                ))
        return results

    async def customers(
        self, session: AsyncSession, q: str, *, limit: int, cursor: str | None = None
    ) -> SearchResults:
        """Partial name or address, accents and case folded; best similarity first."""
        query = parse(q)
        words = [normalize(t.text) for t in query.text if not t.negated]
        fingerprint = query_fingerprint("customer", q)
        if not words:
            return SearchResults(results=[], count=0, warnings=[*query.warnings, "nothing to search for"])
        params: list[object] = [" ".join(words)]
        where = []
        for word in words:
            params.append("%" + re.sub(r"([\\%_])", r"\\\1", word) + "%")
            where.append(f"{_CUSTOMER_TEXT} LIKE ${len(params)}::text")
        after = ""
        if cursor is not None:
            try:
                score, ident = decode_cursor(cursor, fingerprint)
                params += [float(score), uuid.UUID(str(ident))]
            except (ValueError, TypeError) as exc:
                raise BadCursor(str(exc) if isinstance(exc, BadCursor) else "cursor is not one this server issued") from exc
            after = f" AND (score, id) < (${len(params) - 1}::float8, ${len(params)})"
        params.append(limit + 1)
        statement = (
            f"SELECT * FROM (SELECT {_CUSTOMER_COLUMNS}, similarity({_CUSTOMER_TEXT}, $1)::float8 AS score"
            f" FROM customers WHERE {' AND '.join(where)}) c WHERE $1::text IS NOT NULL{after}"
            f" ORDER BY score DESC, id DESC LIMIT ${len(params)}"
        )
        count_statement = (
            f"SELECT count(*) FROM (SELECT 1 FROM customers WHERE $1::text IS NOT NULL"
            f" AND {' AND '.join(where)} LIMIT 10001) c"
        )
        async with driver_of(session) as connection:
            rows = await connection.fetch(statement, *params, timeout=10)
            count = await connection.fetchval(count_statement, *params[:1 + len(words)], timeout=10)
        next_cursor = None
        if len(rows) > limit:
            rows = rows[:limit]
            next_cursor = encode_cursor([rows[-1]["score"], str(rows[-1]["id"])], fingerprint)
        results = [
            CustomerResult.model_validate({
                **{k: row[k] for k in CustomerOut.model_fields}, "score": row["score"],
                "highlight": marked_to_html(_mark(f"{row['name']} <{row['email']}>", words)),
            })
            for row in rows
        ]
        if self.metrics is not None:
            self.metrics.search_queries.labels("postgres", "customer").inc()
        return SearchResults(
            results=results, count=min(count, 10_000), count_approximate=count > 10_000,
            next_cursor=next_cursor, warnings=list(query.warnings),
        )


def _mark(text: str, words: list[str]) -> str:
    """Markers around each occurrence of the (normalized) words, found accent-insensitively."""
    folded, origin = [], []
    for i, ch in enumerate(text):
        for piece in normalize(ch):
            folded.append(piece)
            origin.append(i)
    haystack = "".join(folded)
    marked = [False] * len(text)
    for word in words:
        start = haystack.find(word)
        while start >= 0 and word:
            for j in range(start, start + len(word)):
                marked[origin[j]] = True
            start = haystack.find(word, start + len(word))
    out, inside = [], False
    for ch, m in zip(text, marked):
        if m != inside:
            out.append(MARK_START if m else MARK_END)
            inside = m
        out.append(ch)
    if inside:
        out.append(MARK_END)
    return "".join(out)


async def _named_groups(
    connection: asyncpg.Connection, facets: dict, known: dict[str, str]
) -> dict[str, dict[str, int]]:
    """Group facets by group name (ids mean nothing to a person); the rest as they are.
    `known`: names the backend found with its facets (id ▸ name)."""
    out: dict[str, dict[str, int]] = {}
    for name, counts in facets.items():
        out[name] = {("none" if k is None else str(k)): v for k, v in counts.items()}
    groups = facets.get("group") or {}
    names = dict(known)
    unknown = [uuid.UUID(str(k)) for k in groups if k is not None and str(k) not in names]
    if unknown:
        names.update({str(r["id"]): r["name"] for r in await connection.fetch(
            "SELECT id, name FROM groups WHERE id = ANY($1::uuid[])", unknown
        )})
    if groups:
        out["group"] = {("none" if k is None else names.get(str(k), str(k))): v for k, v in groups.items()}
    return out


__all__ = ["BadCursor", "QueryError", "SearchService", "backend_from_settings"]
