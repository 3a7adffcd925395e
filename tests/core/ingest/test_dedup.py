"""The duplicate check (core/ingest/prefetch.py `handled_before`): the earlier handled row of the
same message, found by its whole key (Message-ID or none, and the bytes' digest) through the
index, however many messages the inbound table already holds."""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from core.db import Database, asyncpg_dsn
from core.ingest.models import InboundMessage
from core.ingest.prefetch import HANDLED_BEFORE, handled_before
from core.migrate import upgrade
from tests.support.postgres import create_database, drop_database


async def _stored(connection: asyncpg.Connection, raw: bytes, message_id: str | None, status: str) -> uuid.UUID:
    row_id = uuid.uuid4()
    await connection.execute(
        "INSERT INTO inbound_messages (id, source, mail_from, rcpt_tos, raw, size, sha256, message_id, status)"
        " VALUES ($1, 'smtp', 'a@customer.test', '{support@example.com}', $2, $3, $4, $5, $6::inbound_status)",
        row_id, raw, len(raw), hashlib.sha256(raw).hexdigest(), message_id, status,
    )
    return row_id


def _pending(raw: bytes, message_id: str | None) -> InboundMessage:
    return InboundMessage(id=uuid.uuid4(), raw=raw, sha256=hashlib.sha256(raw).hexdigest(), message_id=message_id)


async def test_the_earlier_handled_copy_is_found_by_its_whole_key(db: Database, database_url: str) -> None:
    tag = uuid.uuid4().hex
    raw, bare = f"Subject: {tag}\r\n\r\nhello\r\n".encode(), f"Subject: {tag}\r\n\r\nno id\r\n".encode()
    message_id = f"<{tag}@customer.test>"
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        first = await _stored(connection, raw, message_id, "processed")
        await _stored(connection, raw, message_id, "processed")  # a later copy: the first is named
        without_id = await _stored(connection, bare, None, "quarantined")
        await _stored(connection, f"Subject: {tag}\r\n\r\npending\r\n".encode(), message_id, "pending")
    finally:
        await connection.close()
    batch = [
        _pending(raw, message_id),
        _pending(bare, None),
        _pending(raw, f"<other-{tag}@customer.test>"),  # same bytes, another Message-ID: no duplicate
        _pending(f"Subject: {tag}\r\n\r\npending\r\n".encode(), message_id),  # only a pending copy
    ]
    async with db.unit_of_work() as session:
        found = await handled_before(session, batch)
    assert {key: row.id for key, row in found.items()} == {
        (message_id, batch[0].sha256): first,
        ("", batch[1].sha256): without_id,
    }


async def test_a_batch_row_is_not_its_own_duplicate(db: Database, database_url: str) -> None:
    raw = f"Subject: {uuid.uuid4().hex}\r\n\r\nonce\r\n".encode()
    connection = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        row_id = await _stored(connection, raw, None, "processed")
    finally:
        await connection.close()
    itself = _pending(raw, None)
    itself.id = row_id
    async with db.unit_of_work() as session:
        assert await handled_before(session, [itself]) == {}


@pytest.fixture
async def large_inbound(pg_server: str) -> AsyncIterator[asyncpg.Connection]:
    """A database of its own whose inbound table holds 30,000 handled messages, a tenth of
    them without a Message-ID."""
    url = await create_database(pg_server)
    await upgrade(url)
    connection = await asyncpg.connect(asyncpg_dsn(url))
    try:
        await connection.execute(
            "INSERT INTO inbound_messages (id, source, mail_from, rcpt_tos, raw, size, sha256, message_id, status)"
            " SELECT gen_random_uuid(), 'smtp', 'a@customer.test', '{support@example.com}', 'x', 1,"
            " md5(i::text) || md5((i + 1)::text), CASE WHEN i % 10 = 0 THEN NULL ELSE '<m' || i || '@x>' END,"
            " 'processed' FROM generate_series(1, 30000) AS i"
        )
        await connection.execute("ANALYZE inbound_messages")
        yield connection
    finally:
        await connection.close()
        await drop_database(pg_server, url)


def _scans(plan: dict[str, object]) -> list[tuple[str, str]]:
    found = [(str(plan["Node Type"]), str(plan.get("Relation Name", "")))]
    for child in plan.get("Plans", []):  # type: ignore[attr-defined]
        found += _scans(child)
    return found


async def test_the_check_reads_the_index_not_the_whole_table(large_inbound: asyncpg.Connection) -> None:
    """The plan a prepared statement settles on (the generic one, no literal values): each key
    looked up in the (message_id, sha256) index; no scan of every inbound message."""
    keys = [("<m5@x>", "a" * 64), ("", "b" * 64)] + [(f"<n{i}@x>", f"{i:064x}") for i in range(30)]
    await large_inbound.execute("SET plan_cache_mode = force_generic_plan")
    explained = json.loads(await large_inbound.fetchval(
        f"EXPLAIN (FORMAT JSON) {HANDLED_BEFORE}", [k[0] for k in keys], [k[1] for k in keys], [uuid.uuid4()],
    ))
    plan = explained[0]["Plan"]
    scans = [(node, table) for node, table in _scans(plan) if table == InboundMessage.__tablename__]
    assert scans and all(node != "Seq Scan" for node, _ in scans), scans
