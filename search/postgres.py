"""PostgreSQL full-text search: the embedded default, nothing to install.

One row per live ticket in `ticket_search` (see search/models.py), built from the database by
`index` (the indexer) or `rebuild` (the `reindex` command). Words are matched accent- and
case-insensitively (`helpdesk` text search configuration: unaccent + simple), the last word as
a prefix, words of five letters or more also as their one-typo neighbours from the vocabulary
(`search_terms`, pg_trgm), phrases as phrases. Ranking: a subject match first, then
`ts_rank_cd` over the weighted document, then the newest. Every value reaches SQL as a
parameter; field names come from `resolve.FIELDS`, never from the query.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import asyncpg

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
from search.documents import DOCUMENT_SOURCE, PRIORITY_ARRAY
from search.query import PRIORITY_ORDER, normalize
from search.resolve import DATE_FIELDS, FIELDS, DateFilter, Filter, Resolved
from search.typos import deletions_and_swaps, within_one_edit

CONFIG = "helpdesk"
HEADLINE_SOURCE = 20_000  # characters a snippet is looked for in
TYPO_MIN_LENGTH = 5
TYPO_VARIANTS = 6
SEARCH_TIMEOUT = 10.0  # seconds: a query broader than this is refused, not left running
REBUILD_CHUNK = 2_000

# the document of each live ticket in $1; `{table}` is ticket_search or a table being rebuilt
_DOCUMENTS = DOCUMENT_SOURCE + f"""INSERT INTO {{table}} AS s (ticket_id, title, document, subject, body, number, status, priority, type,
    channel, group_id, assignee_id, requester_id, organization_id, tags, created_at, updated_at,
    solved_at, indexed_at)
SELECT id, to_tsvector('{CONFIG}', subject),
       setweight(to_tsvector('{CONFIG}', subject), 'A')
       || setweight(to_tsvector('{CONFIG}', body), 'B')
       || setweight(to_tsvector('{CONFIG}', concat_ws(' ', requester_name, requester_email,
                    translate(requester_email, '@.', '  '), array_to_string(tags, ' '))), 'C'),
       translate(subject, E'\\x02\\x03\\uE000\\uE001\\uE002', ''), body, number, status::text, array_position({PRIORITY_ARRAY}, priority::text) - 1,
       type::text, channel::text, group_id, assignee_id, requester_id, organization_id, tags,
       created_at, updated_at, solved_at, clock_timestamp()
FROM bounded
ON CONFLICT (ticket_id) DO UPDATE SET
    title = EXCLUDED.title, document = EXCLUDED.document, subject = EXCLUDED.subject,
    body = EXCLUDED.body, number = EXCLUDED.number, status = EXCLUDED.status,
    priority = EXCLUDED.priority, type = EXCLUDED.type, channel = EXCLUDED.channel,
    group_id = EXCLUDED.group_id, assignee_id = EXCLUDED.assignee_id,
    requester_id = EXCLUDED.requester_id, organization_id = EXCLUDED.organization_id,
    tags = EXCLUDED.tags, created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at,
    solved_at = EXCLUDED.solved_at, indexed_at = EXCLUDED.indexed_at
"""
_GONE = """
DELETE FROM {table} WHERE ticket_id = ANY($1::uuid[])
  AND ticket_id NOT IN (SELECT id FROM tickets WHERE id = ANY($1::uuid[]) AND deleted_at IS NULL)
"""
# words of four letters or more: what a five-letter word with one typo can be near
_VOCABULARY = """
INSERT INTO search_terms (word)
SELECT DISTINCT u.lexeme FROM {table} s CROSS JOIN LATERAL unnest(s.document) u
WHERE s.ticket_id = ANY($1::uuid[]) AND length(u.lexeme) BETWEEN 4 AND 40
  AND u.lexeme !~ '[^[:alpha:]]'
ORDER BY 1
ON CONFLICT DO NOTHING
"""
# substitutions and insertions keep most trigrams (pg_trgm finds them); a deletion or two
# swapped letters near the start may not, so those variants are spelled out and looked up
_NEIGHBOURS = """
SELECT q.word AS typed, t.word
FROM unnest($1::text[]) AS q(word)
CROSS JOIN LATERAL (
    SELECT word FROM search_terms WHERE word % q.word
    ORDER BY similarity(word, q.word) DESC, word LIMIT 24
) t
UNION ALL
SELECT v.typed, s.word FROM unnest($2::text[], $3::text[]) AS v(typed, variant)
JOIN search_terms s ON s.word = v.variant
"""
_SUBJECT_OPTIONS = f'StartSel="{MARK_START}", StopSel="{MARK_END}", HighlightAll=true'
_HEADLINE_OPTIONS = (
    f'StartSel="{MARK_START}", StopSel="{MARK_END}", MaxWords=30, MinWords=12, ShortWord=2, '
    'MaxFragments=2, FragmentDelimiter=" … "'
)


class _Sql:
    """Parameters collected while a statement is written: values never enter its text."""

    def __init__(self) -> None:
        self.params: list[Any] = []

    def bind(self, value: Any, cast: str = "") -> str:
        self.params.append(value)
        return f"${len(self.params)}{cast}"


class PostgresSearch:
    name = "postgres"

    async def start(self) -> None:
        return None

    async def close(self) -> None:
        return None

    # ---- indexing ----

    async def index(self, connection: asyncpg.Connection, ticket_ids: Sequence[uuid.UUID]) -> None:
        await write_documents(connection, "ticket_search", list(ticket_ids))

    async def rebuild(self, db: Database, progress: Progress) -> int:
        return await rebuild_aside(db, progress)

    # ---- querying ----

    async def search(
        self, connection: asyncpg.Connection, query: Resolved, *, limit: int, cursor: str | None,
        fingerprint: str,
    ) -> TicketPage:
        sql = _Sql()
        variants = await _typo_variants(connection, query) if query.has_text else {}
        tsquery = _tsquery(sql, query, variants)
        where = [_filter(sql, f) for f in query.filters] + [_date_filter(sql, d) for d in query.dates]
        ranked = tsquery is not None and query.has_text
        if tsquery is not None:
            where.insert(0, "s.document @@ q.q")
        score = ("((s.title @@ q.q)::int + ts_rank_cd('{0.1,0.2,0.4,1.0}', s.document, q.q, 32))::float8"
                 if ranked else "0::float8")
        after = "true"
        if cursor is not None:
            after = _after(sql, cursor, fingerprint)
        # markup characters hidden from ts_headline, which would drop `<script>` as a tag
        # rather than show it; marked_to_html brings them back, escaped
        hide = "'<>&', E'\\uE000\\uE001\\uE002'"
        headline = (
            f"CASE WHEN s.title @@ q.q THEN ts_headline('{CONFIG}', translate(s.subject, {hide}), q.q,"
            f" {sql.bind(_SUBJECT_OPTIONS, '::text')}) ELSE ts_headline('{CONFIG}',"
            f" translate(left(s.body, {HEADLINE_SOURCE}), {hide}), q.q, {sql.bind(_HEADLINE_OPTIONS, '::text')}) END"
            if ranked else "s.subject"
        )
        limit_param = sql.bind(limit + 1, "::int")
        statement = f"""
WITH q AS (SELECT {tsquery or "NULL::tsquery"} AS q),
m AS MATERIALIZED (
    SELECT s.ticket_id, s.updated_at, s.status, s.priority, s.channel, s.group_id, {score} AS score
    FROM ticket_search s, q WHERE {" AND ".join(where) or "true"}
),
page AS (
    SELECT ticket_id, score, updated_at FROM m WHERE {after}
    ORDER BY score DESC, updated_at DESC, ticket_id DESC LIMIT {limit_param}
),
shown AS (
    SELECT p.ticket_id, p.score, p.updated_at, {headline} AS headline
    FROM page p JOIN ticket_search s ON s.ticket_id = p.ticket_id, q
)
SELECT
    (SELECT array_agg(ticket_id ORDER BY score DESC, updated_at DESC, ticket_id DESC) FROM shown) AS ids,
    (SELECT array_agg(score ORDER BY score DESC, updated_at DESC, ticket_id DESC) FROM shown) AS scores,
    (SELECT array_agg(updated_at ORDER BY score DESC, updated_at DESC, ticket_id DESC) FROM shown) AS updated,
    (SELECT array_agg(headline ORDER BY score DESC, updated_at DESC, ticket_id DESC) FROM shown) AS headlines,
    (SELECT count(*) FROM m) AS total,
    (SELECT array_agg(ARRAY[coalesce(k, 'none'), n::text]) FROM (
        SELECT 'status:' || status AS k, count(*) AS n FROM m GROUP BY status
        UNION ALL SELECT 'priority:' || priority, count(*) FROM m GROUP BY priority
        UNION ALL SELECT 'channel:' || channel, count(*) FROM m GROUP BY channel
        UNION ALL SELECT 'group:' || coalesce(group_id::text, 'none'), count(*) FROM m GROUP BY group_id
    ) f) AS facets
"""
        row = await connection.fetchrow(statement, *sql.params, timeout=SEARCH_TIMEOUT)
        return _page(row, limit, fingerprint)

    async def lag_seconds(self, connection: asyncpg.Connection) -> float:
        return await queue_lag(connection)


def _page(row: asyncpg.Record, limit: int, fingerprint: str) -> TicketPage:
    ids, scores, updated, headlines = (row[k] or [] for k in ("ids", "scores", "updated", "headlines"))
    hits = [TicketHit(i, s, marked_to_html(h or "")) for i, s, h in zip(ids, scores, headlines)]
    next_cursor = None
    if len(hits) > limit:
        hits = hits[:limit]
        last = limit - 1
        next_cursor = encode_cursor([scores[last], updated[last].isoformat(), str(ids[last])], fingerprint)
    facets: dict[str, dict[Any, int]] = {name: {} for name in FACETS}
    for key, count in row["facets"] or []:
        name, _, value = key.partition(":")
        if name == "priority":
            value = PRIORITY_ORDER[int(value)].value
        facets[name][None if value == "none" else value] = int(count)
    return TicketPage(hits=hits, count=row["total"], facets=facets, next_cursor=next_cursor)


def _after(sql: _Sql, cursor: str, fingerprint: str) -> str:
    try:
        score, updated, ticket_id = decode_cursor(cursor, fingerprint)
        values = (float(score), datetime.fromisoformat(updated), uuid.UUID(ticket_id))
    except (ValueError, TypeError) as exc:
        raise BadCursor(str(exc) if isinstance(exc, BadCursor) else "cursor is not one this server issued") from exc
    return (f"(score, updated_at, ticket_id) < ({sql.bind(values[0], '::float8')}, "
            f"{sql.bind(values[1], '::timestamptz')}, {sql.bind(values[2], '::uuid')})")


async def _typo_variants(connection: asyncpg.Connection, query: Resolved) -> dict[str, list[str]]:
    """word ▸ the indexed words one edit away (for words of five letters or more)."""
    words = sorted({
        normalize(t.text) for t in query.text
        if not t.phrase and len(t.text) >= TYPO_MIN_LENGTH and t.text.isalpha()
    })
    if not words:
        return {}
    spelled = [(word, variant) for word in words for variant in deletions_and_swaps(word)]
    variants: dict[str, list[str]] = {}
    rows = await connection.fetch(
        _NEIGHBOURS, words, [w for w, _ in spelled], [v for _, v in spelled], timeout=SEARCH_TIMEOUT
    )
    for row in rows:
        typed, word = row["typed"], row["word"]
        found = variants.setdefault(typed, [])
        if word != typed and len(found) < TYPO_VARIANTS and within_one_edit(typed, word):
            found.append(word)
    return variants


def _tsquery(sql: _Sql, query: Resolved, variants: dict[str, list[str]]) -> str | None:
    parts = []
    for term in query.text:
        if term.phrase:
            expression = f"phraseto_tsquery('{CONFIG}', {sql.bind(term.text, '::text')})"
        else:
            word = normalize(term.text)
            if term.prefix and word.isalnum():
                # a bare word of letters and digits: nothing in it is tsquery syntax
                alternatives = [f"to_tsquery('{CONFIG}', {sql.bind(word + ':*', '::text')})"]
            else:
                alternatives = [f"plainto_tsquery('{CONFIG}', {sql.bind(term.text, '::text')})"]
            for variant in variants.get(word, []):
                alternatives.append(f"plainto_tsquery('{CONFIG}', {sql.bind(variant, '::text')})")
            expression = " || ".join(alternatives)
        parts.append(f"!!({expression})" if term.negated else f"({expression})")
    return " && ".join(parts) if parts else None


def _filter(sql: _Sql, f: Filter) -> str:
    if f.field not in FIELDS.values():  # never a name from the query: a programming error
        raise ValueError(f"unknown search field {f.field!r}")
    column = f"s.{f.field}"
    present = [v for v in f.values if v is not None]
    tests = []
    if present:
        if f.field == "tags":
            tests.append(f"{column} && {sql.bind(present, '::text[]')}")
        elif f.field == "priority":
            tests.append(f"{column} = ANY({sql.bind(present, '::int[]')})")
        elif f.field.endswith("_id"):
            tests.append(f"{column} = ANY({sql.bind(present, '::uuid[]')})")
        else:
            tests.append(f"{column} = ANY({sql.bind([str(v) for v in present], '::text[]')})")
    if None in f.values:
        tests.append(f"{column} IS NULL" if f.field != "tags" else f"{column} = '{{}}'")
    positive = " OR ".join(tests) or "false"
    return f"NOT coalesce({positive}, false)" if f.negated else f"coalesce({positive}, false)"


def _date_filter(sql: _Sql, d: DateFilter) -> str:
    if d.field not in DATE_FIELDS.values() or d.op not in (">", ">=", "<", "<="):
        raise ValueError(f"unknown date filter {d.field} {d.op}")
    test = f"s.{d.field} {d.op} {sql.bind(d.value, '::timestamptz')}"
    return f"NOT coalesce({test}, false)" if d.negated else f"coalesce({test}, false)"


# ---- building documents ----

async def write_documents(connection: asyncpg.Connection, table: str, ticket_ids: list[uuid.UUID]) -> None:
    if not ticket_ids:
        return
    await connection.execute(_DOCUMENTS.format(table=table), ticket_ids)
    await connection.execute(_GONE.format(table=table), ticket_ids)
    await connection.execute(_VOCABULARY.format(table=table), ticket_ids)


async def queue_lag(connection: asyncpg.Connection) -> float:
    value = await connection.fetchval(
        "SELECT extract(epoch FROM clock_timestamp() - min(event_at)) FROM search_queue"
    )
    return max(0.0, float(value or 0.0))


async def rebuild_aside(db: Database, progress: Progress) -> int:
    """A new `ticket_search` built beside the one being served, then swapped in one transaction.

    Tickets indexed meanwhile into the old table (by a running indexer) are queued again at
    the swap, so nothing indexed during the build is lost."""
    dsn = asyncpg_dsn(db.url)
    connection = await asyncpg.connect(dsn)
    try:
        started = await connection.fetchval("SELECT clock_timestamp()")
        total = await connection.fetchval("SELECT count(*) FROM tickets WHERE deleted_at IS NULL")
        await connection.execute("DROP TABLE IF EXISTS ticket_search_rebuild")
        await connection.execute(
            "CREATE TABLE ticket_search_rebuild (LIKE ticket_search INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
        )
        await connection.execute("ALTER TABLE ticket_search_rebuild ADD PRIMARY KEY (ticket_id)")
        done = 0
        progress(0, total)
        last = uuid.UUID(int=0)
        while True:
            ids = [r["id"] for r in await connection.fetch(
                "SELECT id FROM tickets WHERE deleted_at IS NULL AND id > $1 ORDER BY id LIMIT $2",
                last, REBUILD_CHUNK,
            )]
            if not ids:
                break
            async with connection.transaction():
                await write_documents(connection, "ticket_search_rebuild", ids)
            last = ids[-1]
            done += len(ids)
            progress(done, total)
        await connection.execute(
            "CREATE INDEX ix_ticket_search_rebuild_document ON ticket_search_rebuild USING gin (document)"
        )
        await connection.execute(
            "CREATE INDEX ix_ticket_search_rebuild_updated_at ON ticket_search_rebuild (updated_at, ticket_id)"
        )
        await _swap(connection, started)
        return done
    finally:
        await connection.close()


async def requeue_indexed_since(connection: asyncpg.Connection, started: datetime) -> None:
    """Tickets the indexer wrote into the served table after the build's snapshot: again."""
    await connection.execute(
        "INSERT INTO search_queue (ticket_id, queued_at, event_at)"
        " SELECT ticket_id, clock_timestamp(), indexed_at FROM ticket_search WHERE indexed_at >= $1"
        " ON CONFLICT (ticket_id) DO UPDATE SET queued_at = EXCLUDED.queued_at",
        started,
    )


async def _swap(connection: asyncpg.Connection, started: datetime) -> None:
    async with connection.transaction():
        await connection.execute("LOCK TABLE ticket_search IN ACCESS EXCLUSIVE MODE")
        await requeue_indexed_since(connection, started)
        await connection.execute("DROP TABLE ticket_search")
        await connection.execute("ALTER TABLE ticket_search_rebuild RENAME TO ticket_search")
        for old, new in (
            ("ticket_search_rebuild_pkey", "pk_ticket_search"),
            ("ix_ticket_search_rebuild_document", "ix_ticket_search_document"),
            ("ix_ticket_search_rebuild_updated_at", "ix_ticket_search_updated_at"),
        ):
            await connection.execute(f"ALTER INDEX {old} RENAME TO {new}")
    await connection.execute("ANALYZE ticket_search")
