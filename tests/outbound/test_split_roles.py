"""`serve --roles smtp,api` and `serve --roles worker,scheduler` as separate processes sharing
one PostgreSQL and one broker; the worker is killed (SIGKILL) mid-stream and started again."""

from __future__ import annotations

import asyncio
import os
import signal
import smtplib
import subprocess
import sys
import uuid
from email.message import EmailMessage
from pathlib import Path

import aiohttp
from sqlalchemy import select

from core.agents.service import agent_service
from core.db import Database
from core.enums import AgentRole, DeliveryStatus
from core.events import OutboundDelivery
from tests.outbound.support import SmtpSink, Tansu, eventually, free_port
from tests.support.gateway import SUPPORT, crlf


class Process:
    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log = log
        self.popen = subprocess.Popen(
            [sys.executable, "-m", "gateway", *args], env=env, cwd=log.parent,
            stdout=log.open("wb"), stderr=subprocess.STDOUT,
        )

    async def ready(self) -> None:
        async def printed_roles() -> bool:
            assert self.popen.poll() is None, self.log.read_text()
            return "roles:" in self.log.read_text()
        await eventually(printed_roles, timeout=60, what=f"{self.log.name} to start")

    def kill(self) -> None:
        if self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()

    def terminate(self) -> int:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                return self.popen.wait(30)
            except subprocess.TimeoutExpired:
                self.popen.kill()
        return self.popen.wait()


def environment(database_url: str, tansu: Tansu, sink: SmtpSink, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    env.update({
        "HELPDESK_DATABASE_URL": database_url, "HELPDESK_KAFKA_BOOTSTRAP": tansu.bootstrap,
        "HELPDESK_SMTP_RELAY": sink.relay, "HELPDESK_SUPPORT_ADDRESSES": f"{SUPPORT}=Support",
        "HELPDESK_INGEST_POLL_SECONDS": "0.2", "HELPDESK_OUTBOX_POLL_SECONDS": "0.05",
        "HELPDESK_KAFKA_PARTITIONS": "2",
        # every test message comes from one host (127.0.0.1): a worker that acknowledges more
        # than a host's burst of 20 (the survivor of a kill, replayed events included) would
        # suppress the rest; the budget has tests of its own
        "HELPDESK_ACK_PER_HOST_BURST": "1000", **extra,
    })
    return env


def send(port: int, sender: str, subject: str) -> None:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, SUPPORT, subject
    m["Message-ID"] = f"<{uuid.uuid4().hex}@mail.test>"
    m.set_content("Hello, something is broken.")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(sender, [SUPPORT], crlf(m.as_bytes()))


async def test_split_roles_and_a_killed_worker_send_each_notification_once(
    database_url: str, db: Database, tansu: Tansu, sink: SmtpSink, tmp_path: Path
) -> None:
    smtp_port, http_port = free_port(), free_port()
    front = Process(
        ["serve", "--roles", "smtp,api", "--smtp-port", str(smtp_port), "--http-port", str(http_port),
         "--data-dir", str(tmp_path / "front")],
        environment(database_url, tansu, sink), tmp_path / "front.log",
    )
    worker_env = environment(database_url, tansu, sink, HELPDESK_MAIL_CONCURRENCY="1")
    worker_args = ["serve", "--roles", "worker,scheduler", "--data-dir", str(tmp_path / "worker")]
    worker = Process(worker_args, worker_env, tmp_path / "worker.log")
    processes = [front, worker]
    try:
        await asyncio.gather(front.ready(), worker.ready())
        senders = [f"split-{i}-{uuid.uuid4().hex[:6]}@mail.test" for i in range(24)]
        sink.delay = 0.05  # a slow relay: the kill lands while mail is still going out
        await asyncio.gather(*(asyncio.to_thread(send, smtp_port, s, f"Case {i}") for i, s in enumerate(senders)))

        async def some_sent() -> bool:
            return sum(1 for s in senders if sink.to(s)) >= 4
        await eventually(some_sent, timeout=30, what="the first acknowledgements")
        worker.kill()
        sent_before = sum(1 for s in senders if sink.to(s))
        assert sent_before < len(senders), "the worker finished before it could be killed mid-stream"

        worker = Process(worker_args, worker_env, tmp_path / "worker2.log")
        processes.append(worker)
        await worker.ready()
        for address in senders:
            await sink.wait_for(address, timeout=60)

        async with db.unit_of_work() as session:
            rows = list(await session.scalars(select(OutboundDelivery).where(OutboundDelivery.recipient.in_(senders))))
        assert sorted(r.recipient for r in rows) == sorted(senders)
        for row in rows:
            assert row.status is DeliveryStatus.sent
            # at most the one message in flight at the kill repeats, and then with its Message-ID
            ids = {m.message["Message-ID"] for m in sink.to(row.recipient)}
            assert ids == {f"<{row.message_id}>"}, (row.recipient, ids)
        repeated = [s for s in senders if len(sink.to(s)) > 1]
        assert len(repeated) <= 1, repeated

        # an agent's public comment over the API of the front process goes out through the worker
        async with db.unit_of_work() as session:
            token = await agent_service.token_for(
                session, email=f"split-agent-{uuid.uuid4().hex[:6]}@agents.test", name="Sam", role=AgentRole.agent)
        ticket_id = next(r.ticket_id for r in rows if r.recipient == senders[0])
        async with aiohttp.ClientSession(f"http://127.0.0.1:{http_port}",
                                         headers={"Authorization": f"Bearer {token}"}) as client:
            async with client.post(f"/api/v1/tickets/{ticket_id}/comments",
                                   json={"body": "Fixed it for you.", "visibility": "public"}) as response:
                assert response.status == 201, await response.text()
        [_, comment] = await sink.wait_for(senders[0], 2, timeout=30)
        assert "Fixed it for you." in comment.message.get_body(("plain",)).get_content()
    finally:
        codes = {p.log.name: p.terminate() for p in reversed(processes)}
    assert (codes["front.log"], codes["worker2.log"]) == (0, 0)  # SIGTERM drains and exits 0
