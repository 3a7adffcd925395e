"""Cross-process wake-up: the intake's commit NOTIFYs, runners in other processes LISTEN.

Polling stays as the safety net (a lost notification costs at most one poll interval)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

import asyncpg

from core.db import asyncpg_dsn

log = logging.getLogger(__name__)

CHANNEL = "helpdesk_inbound"


class InboundListener:
    """Calls `wake` on every notification; reconnects after the database went away."""

    def __init__(self, url: str, wake: Callable[[], None], *, retry_seconds: float = 2.0) -> None:
        self.dsn = asyncpg_dsn(url)
        self.wake = wake
        self.retry_seconds = retry_seconds
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _listen(self) -> None:
        while True:
            try:
                connection = await asyncpg.connect(self.dsn, timeout=5)
            except (OSError, asyncpg.PostgresError, asyncio.TimeoutError) as exc:
                log.warning("inbound listener cannot connect (%s); polling meanwhile", exc)
                await asyncio.sleep(self.retry_seconds)
                continue
            closed = asyncio.Event()
            try:
                connection.add_termination_listener(lambda _conn: closed.set())
                await connection.add_listener(CHANNEL, lambda *_args: self.wake())
                self.wake()  # anything committed while we were not listening
                await closed.wait()
            finally:
                await connection.close()
