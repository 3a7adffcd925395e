"""A PostgreSQL server for the test session, and throwaway databases on it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg

from core.db import asyncpg_dsn, sqlalchemy_url
from core.embedded_pg import EmbeddedPostgres


@contextmanager
def postgres_server(tmp: Path) -> Iterator[str]:
    """`HELPDESK_TEST_DATABASE_URL` if set, else an embedded server that lives for the session."""
    external = os.environ.get("HELPDESK_TEST_DATABASE_URL")
    if external:
        yield sqlalchemy_url(external)
        return
    server = EmbeddedPostgres(tmp / "pg", delete_on_stop=True)
    url = server.start()
    try:
        yield url
    finally:
        server.stop()


def with_database(url: str, name: str) -> str:
    """The same server URL, pointing at database `name`."""
    base, sep, query = url.partition("?")
    head, _, _ = base.rpartition("/")
    return f"{head}/{name}{sep}{query}"


async def create_database(server_url: str) -> str:
    name = f"helpdesk_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(server_url, name)


async def drop_database(server_url: str, url: str) -> None:
    name = url.partition("?")[0].rpartition("/")[2]
    conn = await asyncpg.connect(asyncpg_dsn(server_url))
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
