"""Running a real gateway in the test's event loop, and talking to it over real sockets."""

from __future__ import annotations

import asyncio
import smtplib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError

from core.agents.service import agent_service
from core.config import Settings
from core.db import Database
from core.enums import AgentRole, InboundStatus
from core.ingest.models import InboundMessage
from gateway.roles import Gateway

SUPPORT = "support@example.com"
TRUSTED_MTA = "mx.test"


def verified(sender: str, result: str = "pass", policy: str = "none") -> str:
    """The `Authentication-Results` header our trusted MTA adds for `sender`'s domain."""
    domain = sender.rpartition("@")[2].strip(">").lower()
    return f"{TRUSTED_MTA}; spf={result} smtp.mailfrom={domain}; dmarc={result} header.from={domain} policy.dmarc={policy}"


def make_settings(database_url: str, data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = dict(
        database_url=database_url, data_dir=data_dir, smtp_port=0, http_port=0,
        support_addresses=f"{SUPPORT}=Support,billing@example.com=Billing",
        ingest_poll_seconds=0.2, smtp_drain_seconds=2.0,
        # as behind an MTA that verified the sender: `verified()` headers are believed
        sender_verification="trust-mta", trusted_authserv_ids=TRUSTED_MTA,
    )
    values.update(overrides)
    return Settings(**values)


@dataclass
class Running:
    gateway: Gateway
    db: Database
    token: str

    @property
    def smtp_port(self) -> int:
        assert self.gateway.smtp_port is not None
        return self.gateway.smtp_port

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.gateway.http_port}"

    async def send(self, raw: bytes | str, *, rcpt: list[str] | None = None, mail_from: str = "sender@customer.test") -> dict:
        """Send over a real SMTP connection (in a thread: smtplib blocks)."""
        data = raw.encode() if isinstance(raw, str) else raw
        return await asyncio.to_thread(smtp_send, self.smtp_port, mail_from, rcpt or [SUPPORT], data)

    async def settled(self, inbound_id: uuid.UUID | str, timeout: float = 15.0) -> InboundMessage:
        """Wait until the ingest runner has decided the fate of one inbound row."""
        return await wait_settled(self.db, inbound_id, timeout)

    @asynccontextmanager
    async def http(self, token: str | None = None) -> AsyncIterator[aiohttp.ClientSession]:
        token = self.token if token is None else token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        async with aiohttp.ClientSession(self.base_url, headers=headers) as client:
            yield client


def crlf(data: bytes) -> bytes:
    """Line ends as on the wire: smtplib sends bytes as they are."""
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def smtp_send(port: int, mail_from: str, rcpt: list[str], data: bytes) -> dict:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        refused = client.sendmail(mail_from, rcpt, crlf(data))
        code, message = client.noop()
        assert code == 250
        return refused


def queued_id(reply: bytes) -> str:
    """The inbound id from `250 2.0.0 OK queued as <uuid>`."""
    return reply.decode().rsplit(" ", 1)[-1]


async def wait_settled(db: Database, inbound_id: uuid.UUID | str, timeout: float = 15.0) -> InboundMessage:
    deadline = asyncio.get_running_loop().time() + timeout
    inbound_uuid = uuid.UUID(str(inbound_id))
    while True:
        try:
            async with db.unit_of_work() as session:
                row = await session.scalar(select(InboundMessage).where(InboundMessage.id == inbound_uuid))
        except DBAPIError as exc:
            if not exc.connection_invalidated:  # a pooled connection from before a restart
                raise
            continue
        if row is not None and row.status is not InboundStatus.pending:
            return row
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"inbound {inbound_id} still pending after {timeout}s")
        await asyncio.sleep(0.05)


@asynccontextmanager
async def running_gateway(settings: Settings, *, role: AgentRole = AgentRole.admin) -> AsyncIterator[Running]:
    db = Database(settings.database_url or "", pool_size=5)
    gateway = Gateway(settings=settings, db=db)
    await gateway.start()
    try:
        probe_db = Database(settings.database_url or "", pool_size=2)
        async with probe_db.unit_of_work() as session:
            token = await agent_service.token_for(
                session, email=f"{role.value}-{uuid.uuid4().hex[:8]}@agents.test", name="Test", role=role
            )
        try:
            yield Running(gateway=gateway, db=probe_db, token=token)
        finally:
            await probe_db.dispose()
    finally:
        await gateway.stop()
