"""PostgreSQL full-text search: the embedded default, nothing to install.

One row per live ticket in `ticket_search` (see search/models.py), built from the database by
`index` (the indexer) or `rebuild` (the `reindex` command). Words are matched accent- and
case-insensitively (`helpdesk` text search configuration: unaccent + simple), the last word as
a prefix, words of five letters or more also as their one-typo neighbours from the vocabulary
(`search_terms`), phrases as phrases. Ranking: a subject match first, then the newest
(see `_matched` for why not `ts_rank`). Every value reaches SQL as a
parameter; field names come from `resolve.FIELDS`, never from the query.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg

from core.db import Database
from core.tickets.views import VIEW_COLUMNS
from search.backend import (
    EXACT_COUNT_LIMIT,
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
from search.pg_documents import rebuild_aside, write_documents
from search.query import PRIORITY_ORDER, normalize
from search.resolve import DATE_FIELDS, FIELDS, DateFilter, Filter, Resolved
from search.typos import one_typo_away

CONFIG = "helpdesk"
# ts_headline parses every character it is given (~0.2 ms for 2 KB), so it is given a window
# around the first place a searched word starts (found by a regular expression, then in the
# accent-folded text): the fragments it picks lie there anyway
HEADLINE_BEFORE = 160
HEADLINE_WINDOW = 520
TYPO_MIN_LENGTH = 5
TYPO_VARIANTS = 6
SEARCH_TIMEOUT = 10.0  # seconds: a query broader than this is refused, not left running

# every word one typo away from a typed word the index does not know, spelled out and looked
# up by primary key: a few hundred index probes (a trigram index finds them too, but words
# sharing common trigrams made it 22-55 ms a word)
_NEIGHBOURS = """
SELECT v.typed, v.variant AS word FROM unnest($1::text[], $2::text[]) AS v(typed, variant)
WHERE v.variant IN (SELECT word FROM search_terms WHERE word = ANY($2::text[]))
"""
_SUBJECT_OPTIONS = f'StartSel="{MARK_START}", StopSel="{MARK_END}", HighlightAll=true'
_HEADLINE_OPTIONS = (
    f'StartSel="{MARK_START}", StopSel="{MARK_END}", MaxWords=30, MinWords=12, ShortWord=2, '
    'MaxFragments=2, FragmentDelimiter=" … "'
)


_WORD = re.compile(r"\w+")
_LOCATED_MAX = 32  # words a snippet is centred by: a query of hundreds needs no more


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
        # The planner prices `document @@ query` as if documents were read for free; they are
        # TOASTed, so a sequential scan decompresses every document where the GIN index visits
        # only the matching ones (seen: 430 ms against 15 ms on 20,000 tickets). This
        # transaction only.
        # Qualifiers alone: a capped count reads the first rows it finds, and the planner, not
        # knowing they are few, would rather scan the table than the field's covering index.
        # With words, the plan is the same whatever the words (the words index, then the few
        # tickets shown), but planning it (~3 ms: the snippets' subqueries) cost as much as
        # running it: a generic plan is made once per connection and statement shape.
        settings = "SET LOCAL enable_seqscan = off"
        if query.text:
            settings += "; SET LOCAL plan_cache_mode = force_generic_plan"
        async with _read_only(connection, settings):
            if not query.text:
                return await self._filtered(connection, query, limit=limit, cursor=cursor, fingerprint=fingerprint)
            return await self._matched(connection, query, limit=limit, cursor=cursor, fingerprint=fingerprint)

    async def _matched(
        self, connection: asyncpg.Connection, query: Resolved, *, limit: int, cursor: str | None,
        fingerprint: str,
    ) -> TicketPage:
        """Words (and qualifiers): every match counted, the page ranked subject first, then newest.

        Ranking reads no document: `ts_rank` over every match decompresses each document and
        costs more than all else together on broad words; the subject (its own small vector)
        and the date answer "subject above body, newer above older" for a fraction of that."""
        sql = _Sql()
        variants = await _typo_variants(connection, query)
        tsquery = _tsquery(sql, query, variants)
        # the words narrow far more than a status does: ANDing the status index's tens of
        # thousands of rows into the words' bitmap cost more than the rest of the query
        where = ["s.document @@ q.q"] + [_filter(sql, f, by_index=f.field != "status") for f in query.filters]
        where += [_date_filter(sql, d) for d in query.dates]
        after = _after(sql, cursor, fingerprint, scored=True) if cursor else "true"
        headline = _headline(sql, _located_words(query, variants)) if query.has_text else "s.subject"
        limit_param = sql.bind(limit + 1, "::int")
        shown_limit = sql.bind(limit, "::int")
        statement = f"""
WITH q AS (SELECT {tsquery} AS q),
m AS MATERIALIZED (
    SELECT s.ticket_id, s.updated_at, s.status, s.priority, s.channel, s.group_id,
           CASE WHEN s.title @@ q.q THEN 2 ELSE 1 END::float8 AS score
    FROM ticket_search s, q WHERE {" AND ".join(where)}
),
page AS (
    SELECT ticket_id, score, updated_at FROM m WHERE {after}
    ORDER BY score DESC, updated_at DESC, ticket_id DESC LIMIT {limit_param}
),
numbered AS (SELECT *, row_number() OVER (ORDER BY {_ORDER}) AS n FROM page),
shown AS (
    -- the row past the page only tells that there is a next page: no snippet for it
    SELECT p.ticket_id, p.score, p.updated_at, CASE WHEN p.n <= {shown_limit} THEN {headline} END AS headline
    FROM numbered p JOIN ticket_search s ON s.ticket_id = p.ticket_id
    LEFT JOIN tickets d ON d.id = p.ticket_id, q
),
{_COMBINATIONS}
{_RESULT}
"""
        rows = await connection.fetch(statement, *sql.params, timeout=SEARCH_TIMEOUT)
        return _page(rows, limit, fingerprint, approximate=False)

    async def _filtered(
        self, connection: asyncpg.Connection, query: Resolved, *, limit: int, cursor: str | None,
        fingerprint: str,
    ) -> TicketPage:
        """Qualifiers alone: newest first along the date index; counted up to 10,000."""
        sql = _Sql()
        where = [_filter(sql, f) for f in query.filters] + [_date_filter(sql, d) for d in query.dates]
        condition = " AND ".join(where) or "true"
        after = _after(sql, cursor, fingerprint, scored=False) if cursor else "true"
        limit_param = sql.bind(limit + 1, "::int")
        statement = f"""
WITH page AS (
    SELECT s.ticket_id, 0::float8 AS score, s.updated_at FROM ticket_search s
    WHERE {condition} AND {after} ORDER BY s.updated_at DESC, s.ticket_id DESC LIMIT {limit_param}
),
shown AS (SELECT p.ticket_id, p.score, p.updated_at, s.subject AS headline
          FROM page p JOIN ticket_search s ON s.ticket_id = p.ticket_id),
m AS (
    SELECT s.status, s.priority, s.channel, s.group_id FROM ticket_search s
    WHERE {condition} LIMIT {EXACT_COUNT_LIMIT + 1}
),
{_COMBINATIONS}
{_RESULT}
"""
        rows = await connection.fetch(statement, *sql.params, timeout=SEARCH_TIMEOUT)
        return _page(rows, limit, fingerprint, approximate=rows[0]["total"] > EXACT_COUNT_LIMIT)


_ORDER = "score DESC, updated_at DESC, ticket_id DESC"
_TICKET_COLUMNS = ", ".join(f"t.{c.key}" for c in VIEW_COLUMNS)
# the matches `m` counted once by all four facet fields together (a few hundred rows at most):
# the count and each facet are sums over these, not passes over every match
_COMBINATIONS = """combinations AS (
    SELECT status, priority, channel, group_id, count(*) AS n FROM m GROUP BY 1, 2, 3, 4
)"""
# the count and the facets (groups with their names), then the page from `shown` with each
# ticket as the API shows it: one round trip. At least one row, even with no hits.
_RESULT = f"""
SELECT a.total, a.facets, h.*
FROM (SELECT (SELECT coalesce(sum(n), 0)::bigint FROM combinations) AS total, (
    SELECT array_agg(ARRAY[f.k, f.n::text, g.name]) FROM (
        SELECT CASE WHEN GROUPING(status) = 0 THEN 'status:' || status
                    WHEN GROUPING(priority) = 0 THEN 'priority:' || priority
                    WHEN GROUPING(channel) = 0 THEN 'channel:' || channel
                    ELSE 'group:' || coalesce(group_id::text, 'none') END AS k,
               GROUPING(group_id) AS by_group, group_id, sum(n) AS n
        FROM combinations GROUP BY GROUPING SETS ((status), (priority), (channel), (group_id))
    ) f LEFT JOIN groups g ON f.by_group = 0 AND g.id = f.group_id
) AS facets) a
LEFT JOIN LATERAL (
    SELECT sh.ticket_id AS hit_id, sh.score AS hit_score, sh.updated_at AS hit_updated,
           sh.headline AS hit_headline, t.id IS NOT NULL AS hit_live, {_TICKET_COLUMNS}
    FROM shown sh LEFT JOIN tickets t ON t.id = sh.ticket_id AND t.deleted_at IS NULL
) h ON true
ORDER BY h.hit_score DESC, h.hit_updated DESC, h.hit_id DESC
"""
_TICKET_KEYS = tuple(c.key for c in VIEW_COLUMNS)


@asynccontextmanager
async def _read_only(connection: asyncpg.Connection, settings: str) -> AsyncIterator[None]:
    """A read-only transaction with `settings`, begun in the same round trip as they are set."""
    if connection.is_in_transaction():  # a caller's own: ours is a savepoint inside it
        async with connection.transaction():
            await connection.execute(settings)
            yield
        return
    await connection.execute(f"BEGIN READ ONLY; {settings}")
    try:
        yield
    except BaseException:
        if not connection.is_closed():
            await connection.execute("ROLLBACK")
        raise
    await connection.execute("COMMIT")


def _headline(sql: _Sql, words: list[str]) -> str:
    """The matched subject whole, else the best fragments of the ticket's first text (its
    description, then its comments, oldest first) where a searched word starts, cut from a
    window around that place. Markup characters are hidden from ts_headline, which would drop
    `<script>` as a tag rather than show it; marked_to_html brings them back, escaped (the
    characters the markers use are removed from the text first, as in the documents).
    Written over `shown`'s rows: `p` the page, `s` the search row, `d` the ticket."""
    hide = "E'<>&\\x02\\x03\\uE000\\uE001\\uE002', E'\\uE000\\uE001\\uE002'"
    subject = (f"ts_headline('{CONFIG}', translate(s.subject, '<>&', E'\\uE000\\uE001\\uE002'), q.q,"
               f" {sql.bind(_SUBJECT_OPTIONS, '::text')})")
    if words:
        pattern = sql.bind("\\m(?:" + "|".join(_regex_literal(w) for w in words) + ")", "::text")
        # the first text where a word starts as written (any case), else accent-folded: the
        # description, then the comments along their index, so the scan stops at the first
        first = [
            f"CASE WHEN {folded}(d.description) ~* {pattern} THEN d.description END"
            f", (SELECT c.body FROM ticket_comments c WHERE c.ticket_id = p.ticket_id"
            f" AND {folded}(c.body) ~* {pattern} ORDER BY c.created_at LIMIT 1)"
            for folded in ("", "helpdesk_unaccent")
        ]
        text = f"coalesce({', '.join(first)}, d.description)"
        # positions in the folded text may differ by a letter or two (ß ▸ ss): within the window
        at = (f"coalesce(nullif(regexp_instr(f.text, {pattern}, 1, 1, 0, 'i'), 0),"
              f" nullif(regexp_instr(helpdesk_unaccent(f.text), {pattern}, 1, 1, 0, 'i'), 0), 1)")
    else:
        text, at = "d.description", "1"
    body = (f"(SELECT ts_headline('{CONFIG}', translate(substr(f.text, greatest(1, {at} - {HEADLINE_BEFORE}),"
            f" {HEADLINE_WINDOW}), {hide}), q.q, {sql.bind(_HEADLINE_OPTIONS, '::text')})"
            f" FROM (SELECT {text} AS text) f)")
    return f"CASE WHEN s.title @@ q.q THEN {subject} ELSE {body} END"


def _located_words(query: Resolved, variants: dict[str, list[str]]) -> list[str]:
    """The words whose first place in a body centres its snippet: every word searched for
    (a phrase's first), and the neighbours a typo was taken for."""
    words: list[str] = []
    for term in query.text:
        if term.negated:
            continue
        pieces = _WORD.findall(normalize(term.text))
        words += pieces[:1] if term.phrase else pieces
        words += variants.get(normalize(term.text), [])
    return list(dict.fromkeys(w for w in words if w))[:_LOCATED_MAX]


def _regex_literal(word: str) -> str:
    """A word as a literal in a PostgreSQL regular expression: every character that is not a
    letter or digit escaped (a backslash before a letter would make it an escape instead)."""
    return "".join(ch if ch.isalnum() else "\\" + ch for ch in word)


def _page(rows: list[asyncpg.Record], limit: int, fingerprint: str, *, approximate: bool) -> TicketPage:
    first = rows[0]
    found = [r for r in rows if r["hit_id"] is not None]
    next_cursor = None
    if len(found) > limit:
        found = found[:limit]
        last = found[-1]
        next_cursor = encode_cursor(
            [last["hit_score"], last["hit_updated"].isoformat(), str(last["hit_id"])], fingerprint
        )
    # a ticket deleted since it was indexed is left out (its place still counts for the cursor)
    hits = [TicketHit(r["hit_id"], r["hit_score"], marked_to_html(r["hit_headline"] or ""),
                      {k: r[k] for k in _TICKET_KEYS}) for r in found if r["hit_live"]]
    facets: dict[str, dict[Any, int]] = {name: {} for name in FACETS}
    names: dict[str, str] = {}
    for key, count, group_name in first["facets"] or []:
        name, _, value = key.partition(":")
        if name == "priority":
            value = PRIORITY_ORDER[int(value)].value
        if name == "group" and group_name is not None:
            names[value] = group_name
        facets[name][None if value == "none" else value] = int(count)
    count = min(first["total"], EXACT_COUNT_LIMIT) if approximate else first["total"]
    return TicketPage(hits=hits, count=count, count_approximate=approximate, facets=facets,
                      next_cursor=next_cursor, group_names=names)


def _after(sql: _Sql, cursor: str, fingerprint: str, *, scored: bool) -> str:
    try:
        score, updated, ticket_id = decode_cursor(cursor, fingerprint)
        values = (float(score), datetime.fromisoformat(updated), uuid.UUID(ticket_id))
    except (ValueError, TypeError) as exc:
        raise BadCursor(str(exc) if isinstance(exc, BadCursor) else "cursor is not one this server issued") from exc
    keys = f"{sql.bind(values[1], '::timestamptz')}, {sql.bind(values[2], '::uuid')}"
    if not scored:  # the date index's own order
        return f"(s.updated_at, s.ticket_id) < ({keys})"
    return f"(score, updated_at, ticket_id) < ({sql.bind(values[0], '::float8')}, {keys})"


async def _typo_variants(connection: asyncpg.Connection, query: Resolved) -> dict[str, list[str]]:
    """word ▸ the indexed words one typo away, for words of five letters or more that the index
    does not hold as typed: a word found as typed is taken as meant (a typo that spells another
    word is not guessed at), which keeps common words from matching all their neighbours."""
    typed = sorted({normalize(t.text) for t in query.text
                    if not t.phrase and len(t.text) >= TYPO_MIN_LENGTH and t.text.isalpha()})
    if not typed:
        return {}
    known = {row["word"] for row in await connection.fetch(
        "SELECT word FROM search_terms WHERE word = ANY($1::text[])", typed, timeout=SEARCH_TIMEOUT
    )}
    spelled = [(word, variant) for word in typed if word not in known for variant in one_typo_away(word)]
    if not spelled:
        return {}
    rows = await connection.fetch(
        _NEIGHBOURS, [w for w, _ in spelled], [v for _, v in spelled], timeout=SEARCH_TIMEOUT
    )
    variants: dict[str, list[str]] = {}
    for row in rows:
        found = variants.setdefault(row["typed"], [])
        if len(found) < TYPO_VARIANTS:
            found.append(row["word"])
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


def _filter(sql: _Sql, f: Filter, *, by_index: bool = True) -> str:
    """`by_index=False`: written so that no index matches it (a check on the rows found)."""
    if f.field not in FIELDS.values():  # never a name from the query: a programming error
        raise ValueError(f"unknown search field {f.field!r}")
    column = f"s.{f.field}" if by_index else f"(s.{f.field} || '')"
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
    if f.negated:  # NULL (a field not set) is "not one of these" too
        return f"NOT coalesce({positive}, false)"
    return f"({positive})"  # as it is, so the planner can use the field's index


def _date_filter(sql: _Sql, d: DateFilter) -> str:
    if d.field not in DATE_FIELDS.values() or d.op not in (">", ">=", "<", "<="):
        raise ValueError(f"unknown date filter {d.field} {d.op}")
    test = f"s.{d.field} {d.op} {sql.bind(d.value, '::timestamptz')}"
    return f"NOT coalesce({test}, false)" if d.negated else test


