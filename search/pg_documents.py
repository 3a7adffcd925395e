"""Writing PostgreSQL search documents: for the indexer (a few tickets) and `reindex` (all).

`rebuild_aside` builds a whole new `ticket_search` beside the served one and swaps it in.
"""

from __future__ import annotations

import asyncio
import os
import re
import uuid
from datetime import datetime

import asyncpg

from core.db import Database, asyncpg_dsn
from search.backend import Progress
from search.documents import BY_IDS, BY_RANGE, PRIORITY_ARRAY, document_source, without_markers

CONFIG = "helpdesk"
REBUILD_CHUNK = 5_000

# the document of each live ticket in $1; `{table}` is ticket_search or a table being rebuilt
_WRITE = f"""
INSERT INTO {{table}} AS s (ticket_id, title, document, subject, number, status, priority, type,
    channel, group_id, assignee_id, requester_id, organization_id, tags, created_at, updated_at,
    solved_at, indexed_at)
SELECT id, title,
       setweight(title, 'A')
       || setweight(to_tsvector('{CONFIG}', body), 'B')
       || setweight(to_tsvector('{CONFIG}', concat_ws(' ', requester_name, requester_email,
                    translate(requester_email, '@.', '  '), array_to_string(tags, ' '))), 'C'),
       {without_markers('subject')}, number, status::text, array_position({PRIORITY_ARRAY}, priority::text) - 1,
       type::text, channel::text, group_id, assignee_id, requester_id, organization_id, tags,
       created_at, updated_at, solved_at, clock_timestamp()
-- OFFSET 0: the subquery is kept whole, so the subject is parsed once (flattened, the title's
-- to_tsvector was written out and run twice: for the column and for the document)
FROM (SELECT *, to_tsvector('{CONFIG}', subject) AS title FROM bounded OFFSET 0) b
ON CONFLICT (ticket_id) DO UPDATE SET
    title = EXCLUDED.title, document = EXCLUDED.document, subject = EXCLUDED.subject,
    number = EXCLUDED.number, status = EXCLUDED.status,
    priority = EXCLUDED.priority, type = EXCLUDED.type, channel = EXCLUDED.channel,
    group_id = EXCLUDED.group_id, assignee_id = EXCLUDED.assignee_id,
    requester_id = EXCLUDED.requester_id, organization_id = EXCLUDED.organization_id,
    tags = EXCLUDED.tags, created_at = EXCLUDED.created_at, updated_at = EXCLUDED.updated_at,
    solved_at = EXCLUDED.solved_at, indexed_at = EXCLUDED.indexed_at
"""
_BY_IDS = document_source(BY_IDS) + _WRITE
_BY_RANGE = document_source(BY_RANGE) + _WRITE
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
async def write_documents(connection: asyncpg.Connection, table: str, ticket_ids: list[uuid.UUID]) -> None:
    if not ticket_ids:
        return
    await connection.execute(_BY_IDS.format(table=table), ticket_ids)
    await connection.execute(_GONE.format(table=table), ticket_ids)
    await connection.execute(_VOCABULARY.format(table=table), ticket_ids)


async def queue_lag(connection: asyncpg.Connection) -> float:
    value = await connection.fetchval(
        "SELECT extract(epoch FROM clock_timestamp() - min(event_at)) FROM search_queue"
    )
    return max(0.0, float(value or 0.0))


async def write_vocabulary(connection: asyncpg.Connection, table: str) -> None:
    """Every word of a whole table at once (`ts_stat` aggregates in C: far cheaper than per row)."""
    await connection.execute(
        "INSERT INTO search_terms (word) SELECT word FROM ts_stat($1)"
        " WHERE length(word) BETWEEN 4 AND 40 AND word !~ '[^[:alpha:]]' ON CONFLICT DO NOTHING",
        f"SELECT document FROM {table}",
    )


async def rebuild_aside(db: Database, progress: Progress, *, workers: int | None = None) -> int:
    """A new `ticket_search` built beside the one being served, then swapped in one transaction.

    Chunks of tickets are written by one connection per core at once; the new table gets the
    served table's indexes after it is filled (cheaper than maintaining them row by row).
    Tickets indexed meanwhile into the old table (by a running indexer) are queued again at
    the swap, so nothing indexed during the build is lost."""
    dsn = asyncpg_dsn(db.url)
    connection = await asyncpg.connect(dsn)
    try:
        started = await connection.fetchval("SELECT clock_timestamp()")
        ids = [r["id"] for r in await connection.fetch(
            "SELECT id FROM tickets WHERE deleted_at IS NULL ORDER BY id"
        )]
        await connection.execute("DROP TABLE IF EXISTS ticket_search_rebuild")
        await connection.execute(
            "CREATE TABLE ticket_search_rebuild (LIKE ticket_search INCLUDING DEFAULTS"
            " INCLUDING CONSTRAINTS INCLUDING STORAGE INCLUDING COMPRESSION)"
        )
        await connection.execute("ALTER TABLE ticket_search_rebuild ADD PRIMARY KEY (ticket_id)")
        # LIKE copies columns' storage, not the table's own options (toast_tuple_target)
        options = await connection.fetchval("SELECT reloptions FROM pg_class WHERE oid = 'ticket_search'::regclass")
        if options:
            await connection.execute(f"ALTER TABLE ticket_search_rebuild SET ({', '.join(options)})")
        # ranges of ids: each chunk reads its tickets and their comments by index range
        chunks = [(ids[i], ids[min(i + REBUILD_CHUNK, len(ids)) - 1], min(REBUILD_CHUNK, len(ids) - i))
                  for i in range(0, len(ids), REBUILD_CHUNK)]
        done = 0
        progress(0, len(ids))

        async def work() -> None:
            nonlocal done
            writer = await asyncpg.connect(dsn)
            try:
                await writer.execute("SET work_mem = '64MB'")
                while chunks:
                    low, high, size = chunks.pop()
                    await writer.execute(_BY_RANGE.format(table="ticket_search_rebuild"), low, high)
                    done += size
                    progress(done, len(ids))
            finally:
                await writer.close()

        await asyncio.gather(*(work() for _ in range(workers or max(2, os.cpu_count() or 2))))
        # the vocabulary and the indexes, side by side (each is one core's work)
        await connection.execute("SET maintenance_work_mem = '512MB'")  # GIN builds flush less often
        names, _ = await asyncio.gather(_copy_indexes(connection), _vocabulary_apart(dsn))
        await _swap(connection, started, names)
        return done
    finally:
        await connection.close()


async def _vocabulary_apart(dsn: str) -> None:
    connection = await asyncpg.connect(dsn)
    try:
        await write_vocabulary(connection, "ticket_search_rebuild")
    finally:
        await connection.close()


async def _copy_indexes(connection: asyncpg.Connection) -> list[str]:
    """The served table's indexes, built on the new one under names ending in `_rebuild`."""
    names = []
    for row in await connection.fetch(
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'ticket_search'"
        " AND indexname <> 'pk_ticket_search'"
    ):
        name = row["indexname"]
        definition = re.sub(r" ON (\S+\.)?ticket_search ", r" ON \1ticket_search_rebuild ", row["indexdef"], count=1)
        definition = definition.replace(f"INDEX {name} ", f"INDEX {name}_rebuild ", 1)
        await connection.execute(definition)
        names.append(name)
    return names


async def requeue_indexed_since(connection: asyncpg.Connection, started: datetime) -> None:
    """Tickets the indexer wrote into the served table after the build's snapshot: again."""
    await connection.execute(
        "INSERT INTO search_queue (ticket_id, queued_at, event_at)"
        " SELECT ticket_id, clock_timestamp(), indexed_at FROM ticket_search WHERE indexed_at >= $1"
        " ON CONFLICT (ticket_id) DO UPDATE SET queued_at = EXCLUDED.queued_at",
        started,
    )


async def _swap(connection: asyncpg.Connection, started: datetime, index_names: list[str]) -> None:
    async with connection.transaction():
        await connection.execute("LOCK TABLE ticket_search IN ACCESS EXCLUSIVE MODE")
        await requeue_indexed_since(connection, started)
        await connection.execute("DROP TABLE ticket_search")
        await connection.execute("ALTER TABLE ticket_search_rebuild RENAME TO ticket_search")
        await connection.execute("ALTER INDEX ticket_search_rebuild_pkey RENAME TO pk_ticket_search")
        for name in index_names:
            await connection.execute(f"ALTER INDEX {name}_rebuild RENAME TO {name}")
    # the visibility map too: qualifier-only queries count from the status index alone only
    # where pages are all-visible (seen: 40 ms without it, 12 ms with, at 200,000 tickets)
    await connection.execute("VACUUM (ANALYZE) ticket_search")
