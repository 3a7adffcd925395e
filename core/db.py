"""The engine, sessions and the unit of work: the one place a transaction begins and ends."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar, cast

import asyncpg
from sqlalchemy.ext.asyncio import (
    AsyncConnection,
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

T = TypeVar("T")


CACHES = "helpdesk.caches"  # session.info: the Database's caches


def process_cache(session: AsyncSession, name: str, factory: Callable[[], T]) -> T:
    """The cache `name` shared by every session of the session's Database (made by `factory`
    when first asked for); for a session made without a Database, one for that session only."""
    caches = session.info.setdefault(CACHES, {})
    cache = caches.get(name)
    if cache is None:
        cache = caches[name] = factory()
    return cast(T, cache)


class ConnectionLost(Exception):
    """A pooled connection turned out dead; it has been discarded."""


class Database:
    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = url
        self.engine: AsyncEngine = _engine(url, pool_size)
        # reads that need no transaction of their own: no BEGIN/COMMIT round trips. A pool of
        # their own, set to autocommit once per connection rather than at every checkout
        # (a tenth of a GET's CPU); connections are only opened when first needed
        self.read_engine: AsyncEngine = _engine(url, pool_size, isolation_level="AUTOCOMMIT")
        # derived data this process's sessions share (`process_cache`): it lives as long as the
        # Database, not in module globals
        self.caches: dict[str, Any] = {}
        info = {CACHES: self.caches}
        self.sessions = async_sessionmaker(self.engine, expire_on_commit=False, info=info)
        self.read_sessions = async_sessionmaker(self.read_engine, expire_on_commit=False, info=info)

    @asynccontextmanager
    async def unit_of_work(self) -> AsyncIterator[AsyncSession]:
        """One transaction: committed when the block ends normally, rolled back otherwise."""
        async with self.sessions() as session, session.begin():
            yield session

    @asynccontextmanager
    async def read_only(self) -> AsyncIterator[AsyncSession]:
        """Each statement sees the latest committed data; nothing is written."""
        async with self.read_sessions() as session:
            yield session

    @asynccontextmanager
    async def driver_transaction(self) -> AsyncIterator[asyncpg.Connection]:
        """One transaction on a pooled connection's asyncpg driver itself.

        For the SMTP hot path, where SQLAlchemy's work per statement costs more than the
        statement. Raises `ConnectionLost` (after dropping the connection from the pool)
        when the database went away underneath, so the caller may retry once.
        """
        async with self.driver() as driver, driver.transaction():
            yield driver

    @asynccontextmanager
    async def driver(self) -> AsyncIterator[asyncpg.Connection]:
        """A pooled connection's asyncpg driver outside any transaction: each statement is its
        own transaction, committed before its result comes back (one round trip, where
        BEGIN and COMMIT cost two more). `ConnectionLost` as for `driver_transaction`."""
        async with self.engine.connect() as connection:
            driver: asyncpg.Connection = (await connection.get_raw_connection()).driver_connection
            try:
                yield driver
            except Exception as exc:
                if not driver.is_closed():
                    raise
                await _lost(connection, exc)
                raise ConnectionLost(str(exc)) from exc

    async def dispose(self) -> None:
        await self.engine.dispose()
        await self.read_engine.dispose()


def _engine(url: str, pool_size: int, **options: Any) -> AsyncEngine:
    return create_async_engine(
        url,
        # a fixed pool: overflow connections would be opened and closed under every burst,
        # each preparing its statements anew
        pool_size=pool_size,
        max_overflow=0,
        # no pre-ping: it costs a round trip per transaction; a connection found dead
        # is invalidated on use and the caller's retry (451, runner backoff) gets a new one
        pool_pre_ping=False,
        # the connection returned last goes out first: a light load keeps to a few warm
        # backends, where taking them in turn touched every one of them (PostgreSQL's CPU per
        # accepted message 0.18-0.22 -> 0.13-0.16 ms, bench/ingest.py --processes 2)
        pool_use_lifo=True,
        # a dead database must become a fast, clear 451/503, not a hang
        connect_args={"timeout": 5, "command_timeout": 30},
        **options,
    )


def asyncpg_dsn(url: str) -> str:
    """The SQLAlchemy URL as a plain libpq/asyncpg DSN."""
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


def sqlalchemy_url(dsn: str) -> str:
    if dsn.startswith("postgresql+asyncpg://"):
        return dsn
    for prefix in ("postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+asyncpg://" + dsn[len(prefix):]
    raise ValueError(f"not a PostgreSQL URL: {dsn}")


@asynccontextmanager
async def driver_of(session: AsyncSession) -> AsyncIterator[asyncpg.Connection]:
    """The asyncpg driver under a session's connection, for the hottest reads, where the
    ORM's work per request costs more than the query. The session's own connection, so a
    request never holds two (under load, a second checkout per request can starve the pool)."""
    connection = await session.connection()
    raw = await connection.get_raw_connection()
    driver: asyncpg.Connection = raw.driver_connection
    if not driver.is_in_transaction():
        await _begin(raw.dbapi_connection, connection)
    try:
        yield driver
    except Exception as exc:
        if driver.is_closed():
            await _lost(connection, exc)
        raise


async def _begin(adapted: Any, connection: AsyncConnection) -> None:
    """SQLAlchemy's asyncpg adapter sends BEGIN with the first statement it runs itself: a
    statement sent on the driver before any of SQLAlchemy's would run outside the session's
    transaction (its row and advisory locks released as it ends). Begun here the adapter's way,
    so that its commit or rollback ends it; a no-op on an autocommit engine."""
    start = getattr(adapted, "_start_transaction", None)
    if start is not None and getattr(adapted, "_transaction", None) is None:
        await start()
    elif start is None:  # another SQLAlchemy: any statement of its own begins it
        await connection.exec_driver_sql("SELECT 1")


async def _lost(connection: AsyncConnection, exc: BaseException) -> None:
    """A connection died under us: drop it, and the rest of its pool with it, as SQLAlchemy
    does on a disconnect it sees itself (after a database restart they are all dead, and a
    retry must not draw the next dead one)."""
    await connection.invalidate(exc)
    await connection.engine.dispose(close=False)
