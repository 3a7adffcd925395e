"""`helpdesk serve --processes N`: N serving processes on one host, sharing the SMTP and HTTP
ports (SO_REUSEPORT: the kernel spreads connections over them), under one parent that starts
the embedded PostgreSQL and bootstraps once, restarts a child that dies, and drains them all
on SIGTERM.

Each child is an ordinary `helpdesk serve` with every role it was given; they cooperate through
PostgreSQL exactly as processes on different hosts do."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
import time
from dataclasses import dataclass, field

from core.config import Settings
from core.ingest.host_arrivals import FILE_NAME as ARRIVALS_FILE
from core.ingest.host_arrivals import HostArrivals

log = logging.getLogger(__name__)

READY = "roles:"  # the line a child prints once it listens
RESTART_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)  # a child dying at once again waits longer
STABLE_SECONDS = 30.0  # a child that lived this long starts its next life with the short delay


class ChildFailed(Exception):
    """A child could not start the first time: the same would happen to the others."""


def reserve_port(host: str, port: int) -> socket.socket:
    """Bound but not listening: fixes the port (when 0 was asked) without taking connections."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies, so no child outlives a kill -9."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@dataclass
class Child:
    index: int
    env: dict[str, str]
    argv: list[str]
    proc: asyncio.subprocess.Process | None = None
    ready: asyncio.Event = field(default_factory=asyncio.Event)
    restarts: int = 0
    _reader: asyncio.Task[None] | None = None

    async def spawn(self) -> None:
        self.ready.clear()
        self.proc = await asyncio.create_subprocess_exec(
            *self.argv, env=self.env, stdout=asyncio.subprocess.PIPE, preexec_fn=_die_with_parent,
        )
        self._reader = asyncio.create_task(self._watch_stdout(self.proc))

    async def _watch_stdout(self, proc: asyncio.subprocess.Process) -> None:
        assert proc.stdout is not None
        async for raw in proc.stdout:  # the child's own start-up lines: the parent speaks for all
            if raw.decode(errors="replace").startswith(READY):
                self.ready.set()


@dataclass
class Supervisor:
    settings: Settings
    env: dict[str, str]
    count: int
    stopping: asyncio.Event = field(default_factory=asyncio.Event)
    children: list[Child] = field(default_factory=list)

    def child_argv(self, index: int) -> list[str]:
        return [sys.executable, "-m", "gateway", "serve", "--supervised", "--slot", str(index)]

    async def start(self) -> None:
        """All children up and listening; `ChildFailed` if one could not start."""
        HostArrivals.create(self.settings.data_dir / ARRIVALS_FILE, self.count)
        self.children = [Child(i, self.env, self.child_argv(i)) for i in range(self.count)]
        for child in self.children:
            await child.spawn()
        for child in self.children:
            assert child.proc is not None
            waiter = asyncio.create_task(child.proc.wait())
            ready = asyncio.create_task(child.ready.wait())
            await asyncio.wait({waiter, ready}, return_when=asyncio.FIRST_COMPLETED)
            ready.cancel()
            waiter.cancel()
            if not child.ready.is_set():
                await self.stop()
                raise ChildFailed(f"serving process {child.index + 1} exited with {child.proc.returncode} on start")

    async def run(self) -> None:
        """Restarts children that die, until `stopping` is set."""
        await asyncio.gather(*(self._keep_alive(child) for child in self.children))

    async def _keep_alive(self, child: Child) -> None:
        failures = 0
        while not self.stopping.is_set():
            assert child.proc is not None
            born = time.monotonic()
            code = await child.proc.wait()
            if self.stopping.is_set():
                return
            failures = 0 if time.monotonic() - born > STABLE_SECONDS else failures + 1
            delay = RESTART_DELAYS[min(failures, len(RESTART_DELAYS) - 1)]
            log.error("serving process %d (pid %d) exited with %s; restarting in %.0fs",
                      child.index + 1, child.proc.pid, code, delay)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self.stopping.wait(), delay)
            if self.stopping.is_set():
                return
            child.restarts += 1
            await child.spawn()

    async def stop(self) -> int:
        """SIGTERM to every child (each drains its SMTP sessions and work), then wait; 0 if all
        exited 0. A child still running after the drain time and a margin is killed."""
        self.stopping.set()
        live = [c.proc for c in self.children if c.proc is not None and c.proc.returncode is None]
        for proc in live:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        timeout = self.settings.smtp_drain_seconds + 30
        codes = []
        for proc in live:
            try:
                codes.append(await asyncio.wait_for(proc.wait(), timeout))
            except asyncio.TimeoutError:
                log.error("serving process pid %d did not drain in %.0fs: killed", proc.pid, timeout)
                proc.kill()
                codes.append(await proc.wait())
        return 0 if all(code == 0 for code in codes) else 1


# the embedded server's max_connections is 100: a few are kept for the parent and psql
EMBEDDED_CONNECTIONS = 90


def child_environment(
    settings: Settings, database_url: str, smtp_port: int | None, http_port: int | None, count: int,
) -> dict[str, str]:
    """What every child must agree on, as settings; the rest they read as the parent did."""
    env = dict(os.environ)
    if settings.database_url is None and "HELPDESK_DB_POOL_SIZE" not in env:
        # the embedded PostgreSQL is shared by all: each child's two pools (writes, reads) get
        # their share of its connections rather than the default each
        share = max(2, min(settings.db_pool_size, EMBEDDED_CONNECTIONS // (2 * count)))
        env["HELPDESK_DB_POOL_SIZE"] = str(share)
    env.update({
        "HELPDESK_DATABASE_URL": database_url,
        "HELPDESK_DATA_DIR": str(settings.data_dir),
        "HELPDESK_ROLES": ",".join(settings.roles),
        "HELPDESK_SMTP_HOST": settings.smtp_host, "HELPDESK_HTTP_HOST": settings.http_host,
        "HELPDESK_LMTP": "true" if settings.lmtp else "false",
        "HELPDESK_PROCESSES": "1",
    })
    if smtp_port is not None:
        env["HELPDESK_SMTP_PORT"] = str(smtp_port)
    if http_port is not None:
        env["HELPDESK_HTTP_PORT"] = str(http_port)
    return env
