"""Production layout: two fronts (`--roles smtp,api`) and two workers, each with its own data
directory (as on separate hosts), one PostgreSQL, one Kafka-protocol broker (Tansu), one Redis,
attachments in PostgreSQL. Mail goes in through either front; every attachment is readable
through either; one token has one rate limit across both; a revocation through one front is
refused by the other at once; one worker is killed -9 mid-stream and every acknowledgement
still goes out exactly once."""

from __future__ import annotations

import asyncio
import json
import smtplib
import uuid
from email.message import EmailMessage
from pathlib import Path

import aiohttp
from sqlalchemy import select

from core.agents.service import agent_service
from core.db import Database
from core.enums import AgentRole, DeliveryStatus
from core.events import OutboundDelivery
from core.ingest.models import InboundMessage
from core.tickets.models import TicketAttachment
from tests.outbound.support import SmtpSink, Tansu, eventually, free_port
from tests.outbound.test_split_roles import Process, environment
from tests.support.gateway import SUPPORT, crlf

BURST = 20


def send(port: int, sender: str, subject: str, attachment: bytes) -> None:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, SUPPORT, subject
    m["Message-ID"] = f"<{uuid.uuid4().hex}@mail.test>"
    m.set_content("Hello, the file is attached.")
    m.add_attachment(attachment, maintype="application", subtype="octet-stream", filename="log.bin")
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.sendmail(sender, [SUPPORT], crlf(m.as_bytes()))


async def new_token(db: Database) -> str:
    async with db.unit_of_work() as session:
        return await agent_service.token_for(
            session, email=f"scale-{uuid.uuid4().hex[:8]}@agents.test", name="Scale", role=AgentRole.agent)


async def get(port: int, token: str, path: str) -> tuple[int, bytes]:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as client:
        async with client.get(f"http://127.0.0.1:{port}{path}") as response:
            return response.status, await response.read()


async def test_two_fronts_two_workers_share_everything_that_must_be_shared(
    database_url: str, db: Database, tansu: Tansu, sink: SmtpSink, redis_url: str, tmp_path: Path,
) -> None:
    shared = dict(
        HELPDESK_REDIS_URL=redis_url, HELPDESK_ATTACHMENT_STORE="postgres",
        HELPDESK_API_RATE_BURST=str(BURST), HELPDESK_API_RATE_PER_MINUTE="6",
        HELPDESK_API_AUTH_CACHE_SECONDS="600", HELPDESK_MAIL_CONCURRENCY="1",
    )
    env = environment(database_url, tansu, sink, **shared)
    ports = [(free_port(), free_port()) for _ in range(2)]
    fronts = [
        Process(["serve", "--roles", "smtp,api", "--smtp-port", str(smtp), "--http-port", str(http),
                 "--data-dir", str(tmp_path / f"front{i}")], env, tmp_path / f"front{i}.log")
        for i, (smtp, http) in enumerate(ports)
    ]
    workers = [
        Process(["serve", "--roles", roles, "--data-dir", str(tmp_path / f"worker{i}")], env,
                tmp_path / f"worker{i}.log")
        for i, roles in enumerate(["worker,scheduler", "worker"])
    ]
    processes = [*fronts, *workers]
    try:
        await asyncio.gather(*(p.ready() for p in processes))

        # mail in through either front, each with a file of its own
        senders = [f"scale-{i}-{uuid.uuid4().hex[:6]}@mail.test" for i in range(24)]
        files = {s: uuid.uuid4().bytes * 1000 for s in senders}
        sink.delay = 0.05  # a slow relay: the kill lands while mail is still going out
        await asyncio.gather(*(
            asyncio.to_thread(send, ports[i % 2][0], s, f"Scale {i}", files[s]) for i, s in enumerate(senders)
        ))

        async def some_sent() -> bool:
            return sum(1 for s in senders if sink.to(s)) >= 4
        await eventually(some_sent, timeout=60, what="the first acknowledgements")
        workers[0].kill()  # the other worker must carry on alone
        assert sum(1 for s in senders if sink.to(s)) < len(senders), "done before the kill"
        for address in senders:
            await sink.wait_for(address, timeout=120)

        # every acknowledgement exactly once (the one in flight at the kill may repeat, same Message-ID)
        async with db.unit_of_work() as session:
            rows = list(await session.scalars(
                select(OutboundDelivery).where(OutboundDelivery.recipient.in_(senders))))
        assert sorted(r.recipient for r in rows) == sorted(senders)
        for row in rows:
            assert row.status is DeliveryStatus.sent
            assert {m.message["Message-ID"] for m in sink.to(row.recipient)} == {f"<{row.message_id}>"}
        assert len([s for s in senders if len(sink.to(s)) > 1]) <= 1

        # every attachment readable through either front, though stored by a worker on its own disk
        reader = await new_token(db)
        async with db.read_only() as session:
            stored = (await session.execute(
                select(InboundMessage.mail_from, TicketAttachment.ticket_id, TicketAttachment.id)
                .join(TicketAttachment, TicketAttachment.ticket_id == InboundMessage.ticket_id)
                .where(InboundMessage.mail_from.in_(senders[:4]))
            )).all()
        assert len(stored) == 4
        for sender, ticket_id, attachment_id in stored:
            for _, http in ports:
                status, body = await get(http, reader, f"/api/v1/tickets/{ticket_id}/attachments/{attachment_id}")
                assert (status, body == files[sender]) == (200, True)

        # one rate limit for one token, whichever front answers
        limited = await new_token(db)
        statuses = [(await get(ports[i % 2][1], limited, "/api/v1/groups"))[0] for i in range(60)]
        assert BURST <= statuses.count(200) <= BURST + 2, statuses  # per front it would be 40
        assert statuses.count(429) == 60 - statuses.count(200)

        # a token revoked through one front is refused by the other at once
        doomed = await new_token(db)
        assert [(await get(http, doomed, "/api/v1/groups"))[0] for _, http in ports] == [200, 200]
        _, listing = await get(ports[0][1], doomed, "/api/v1/tokens")
        token_id = json.loads(listing)["tokens"][0]["id"]
        async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {doomed}"}) as client:
            async with client.delete(f"http://127.0.0.1:{ports[0][1]}/api/v1/tokens/{token_id}") as response:
                assert response.status == 204

        async def refused_everywhere() -> bool:
            return [(await get(http, doomed, "/api/v1/groups"))[0] for _, http in ports] == [401, 401]
        await eventually(refused_everywhere, timeout=10, what="both fronts to refuse the revoked token")
    finally:
        codes = {p.log.name: p.terminate() for p in reversed(processes)}
    assert codes["front0.log"] == codes["front1.log"] == codes["worker1.log"] == 0, codes
