"""The session's connection's driver (`core.db.driver_of`): its statements belong to the
session's transaction even when they come before any of SQLAlchemy's own."""

from __future__ import annotations

import asyncpg

from core.db import Database, asyncpg_dsn, driver_of


async def test_a_driver_statement_first_in_a_unit_of_work_runs_in_its_transaction(db: Database, database_url: str) -> None:
    key = 8_311_477_201
    other = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        async with db.unit_of_work() as session:
            async with driver_of(session) as driver:
                assert driver.is_in_transaction()
                await driver.execute("SELECT pg_advisory_xact_lock($1)", key)
            # held until the session's transaction ends, not released with the statement
            assert await other.fetchval("SELECT pg_try_advisory_xact_lock($1)", key) is False
            await driver.execute("CREATE TEMP TABLE driver_first (n int)")
        assert await other.fetchval("SELECT pg_try_advisory_xact_lock($1)", key) is True
        assert not driver.is_in_transaction()  # committed by the session, not left open
    finally:
        await other.close()


async def test_a_rolled_back_unit_of_work_takes_the_driver_statements_with_it(db: Database) -> None:
    class Undo(Exception):
        pass

    try:
        async with db.unit_of_work() as session:
            async with driver_of(session) as driver:
                await driver.execute("CREATE TABLE driver_rolled_back (n int)")
            raise Undo
    except Undo:
        pass
    async with db.read_only() as session:
        async with driver_of(session) as driver:
            assert not driver.is_in_transaction()  # an autocommit session begins nothing
            assert await driver.fetchval("SELECT to_regclass('driver_rolled_back')") is None
