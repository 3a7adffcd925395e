"""The indexer converges with the database whatever the events do, and `reindex` rebuilds aside."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import text

from core.actor import Actor
from core.db import Database, asyncpg_dsn
from core.enums import AgentRole, AuthorType
from core.metrics import Metrics
from core.migrate import upgrade
from core.tickets.changes import ticket_changes
from core.tickets.schemas import TicketCreate, TicketUpdate
from search.indexer import SearchIndexer
from search.pg_documents import requeue_indexed_since
from search.postgres import PostgresSearch
from tests.search.support import unique
from tests.support.postgres import create_database, drop_database

ADMIN = Actor(AuthorType.agent, None, AgentRole.admin)


@pytest.fixture
async def fresh_db(pg_server: str) -> AsyncIterator[Database]:
    """A database of its own: these tests rebuild the whole index."""
    url = await create_database(pg_server)
    await upgrade(url)
    database = Database(url, pool_size=3)
    yield database
    await database.dispose()
    await drop_database(pg_server, url)


async def make_ticket(db: Database, subject: str, body: str) -> uuid.UUID:
    async with db.unit_of_work() as session:
        ticket = await ticket_changes.create(session, TicketCreate.model_validate({
            "subject": subject, "comment": {"body": body},
            "requester": {"email": f"{unique('r')}@customer.test", "name": "R"},
        }), ADMIN)
        return ticket.id


async def events(db: Database) -> list[dict]:
    async with db.unit_of_work() as session:
        rows = await session.execute(text("SELECT payload FROM outbox_events ORDER BY created_at"))
        return [r[0] for r in rows]


async def document_subject(db: Database, ticket_id: uuid.UUID) -> str | None:
    async with db.unit_of_work() as session:
        return await session.scalar(text("SELECT subject FROM ticket_search WHERE ticket_id = :t"), {"t": ticket_id})


async def test_documents_follow_the_database_whatever_the_events_order(fresh_db: Database) -> None:
    indexer = SearchIndexer(fresh_db, PostgresSearch(), Metrics())
    ticket_id = await make_ticket(fresh_db, "First subject", "body")
    created = await events(fresh_db)
    async with fresh_db.unit_of_work() as session:
        ticket = await ticket_changes.resolve_all(session, [str(ticket_id)], field="ids")
        await ticket_changes.update(session, ticket[0], TicketUpdate(subject="Second subject"), ADMIN)
    everything = await events(fresh_db)
    # the newest event first, then the oldest twice (a redelivery): the document is the newest state
    await indexer.handle_batch(list(reversed(everything)))
    await indexer.handle_batch(created)
    assert await indexer.drain() == 1  # one ticket, however many events named it
    assert await document_subject(fresh_db, ticket_id) == "Second subject"
    # an event that arrives after a later change was indexed cannot roll the document back
    await indexer.handle_batch(created)
    await indexer.drain()
    assert await document_subject(fresh_db, ticket_id) == "Second subject"


class Refusing(PostgresSearch):
    """An index that is away (as a Meilisearch server can be): every write fails."""

    async def index(self, connection, ticket_ids) -> None:  # type: ignore[no-untyped-def]
        raise ConnectionError("index unavailable")


async def test_an_index_that_refuses_keeps_the_tickets_queued_until_it_comes_back(fresh_db: Database) -> None:
    ticket_id = await make_ticket(fresh_db, "Queued subject", "body")
    failing = SearchIndexer(fresh_db, Refusing(), Metrics())
    await failing.handle_batch(await events(fresh_db))
    with pytest.raises(ConnectionError):
        await failing.drain_once()
    async with fresh_db.unit_of_work() as session:
        attempts, error = (await session.execute(text(
            "SELECT attempts, last_error FROM search_queue WHERE ticket_id = :t"), {"t": ticket_id})).one()
    assert attempts == 1 and "index unavailable" in error
    assert await document_subject(fresh_db, ticket_id) is None
    working = SearchIndexer(fresh_db, PostgresSearch(), Metrics())
    assert await working.drain() == 0  # backing off
    # retried once its backoff (a second after the first failure) has passed, not before
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    while not (indexed := await working.drain()):
        assert loop.time() < deadline, "the queued ticket was never retried"
        await asyncio.sleep(0.05)
    assert indexed == 1
    assert await document_subject(fresh_db, ticket_id) == "Queued subject"


async def index_names(db: Database) -> dict[str, str]:
    async with db.unit_of_work() as session:
        rows = await session.execute(text(
            "SELECT indexname, replace(indexdef, indexname, '') FROM pg_indexes WHERE tablename = 'ticket_search'"
        ))
        return dict(rows.all())


async def test_reindex_rebuilds_aside_and_requeues_what_changed_meanwhile(fresh_db: Database) -> None:
    ids = [await make_ticket(fresh_db, f"Rebuild {i}", "text") for i in range(5)]
    async with fresh_db.unit_of_work() as session:  # an index that lost documents
        await session.execute(text("DELETE FROM search_queue"))
    progress: list[tuple[int, int]] = []
    search = PostgresSearch()
    indexes_before = await index_names(fresh_db)
    assert await search.rebuild(fresh_db, lambda done, total: progress.append((done, total))) == 5
    assert progress[0] == (0, 5) and progress[-1] == (5, 5)
    for ticket_id in ids:
        assert (await document_subject(fresh_db, ticket_id) or "").startswith("Rebuild")
    assert await index_names(fresh_db) == indexes_before  # the same indexes, under the same names
    assert "ix_ticket_search_document" in indexes_before
    async with fresh_db.unit_of_work() as session:
        queued = await session.scalar(text("SELECT count(*) FROM search_queue"))
        words = set(await session.scalars(text("SELECT word FROM search_terms")))
    assert queued == 0 and "rebuild" in words

    # a ticket the indexer wrote into the served table after the build's snapshot is queued
    # again at the swap, so the new table gets it too
    connection = await asyncpg.connect(asyncpg_dsn(fresh_db.url))
    try:
        started = await connection.fetchval("SELECT clock_timestamp()")
        await connection.execute("UPDATE ticket_search SET indexed_at = clock_timestamp() WHERE ticket_id = $1", ids[0])
        await requeue_indexed_since(connection, started)
        assert [r["ticket_id"] for r in await connection.fetch("SELECT ticket_id FROM search_queue")] == [ids[0]]
    finally:
        await connection.close()


def test_the_reindex_command_prints_a_count(fresh_db: Database, tmp_path: Path) -> None:
    env = {**os.environ, "HELPDESK_DATABASE_URL": fresh_db.url, "HELPDESK_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "gateway", "reindex"], env=env, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "reindexed 0 tickets into postgres" in result.stdout
    wrong = subprocess.run(
        [sys.executable, "-m", "gateway", "reindex", "--backend", "meilisearch"], env=env,
        capture_output=True, text=True, timeout=120,
    )
    assert wrong.returncode == 1 and "HELPDESK_MEILI_URL" in wrong.stderr and "Traceback" not in wrong.stderr


async def test_a_ticket_deleted_before_the_indexer_saw_it_is_never_shown(fresh_db: Database) -> None:
    """Between a deletion and its indexing the document is still there: the page leaves the
    ticket out, and the cursor still walks past its place."""
    from search.service import SearchService

    ids = [await make_ticket(fresh_db, f"Albatross {n}", "sea bird") for n in range(3)]
    indexer = SearchIndexer(fresh_db, PostgresSearch(), Metrics())
    await indexer.handle_batch(await events(fresh_db))
    assert await indexer.drain() == 3
    async with fresh_db.unit_of_work() as session:  # no event: the indexer is not told
        await session.execute(text("UPDATE tickets SET deleted_at = now() WHERE id = :t"), {"t": ids[1]})
    service = SearchService(PostgresSearch())
    seen: list[uuid.UUID] = []
    cursor = None
    async with fresh_db.read_only() as session:
        whole = await service.tickets(session, "albatross", viewer_id=None, limit=10)
        for _ in range(3):
            page = await service.tickets(session, "albatross", viewer_id=None, limit=1, cursor=cursor)
            seen += [r.id for r in page.results]
            cursor = page.next_cursor
            if cursor is None:
                break
    assert {r.id for r in whole.results} == {ids[0], ids[2]}
    assert sorted(seen) == sorted([ids[0], ids[2]]) and cursor is None
    assert all("<mark>" in r.highlight for r in whole.results)
