"""A gateway process killed with SIGKILL while an MTA-like client keeps sending and retrying.

The contract: `250` after DATA only once the raw message is committed, and after that the
message is never lost and never processed twice, whatever crashes. So every message that got
a 250 must end as exactly one ticket; a message whose 250 was lost in the crash is sent again
by the client and must end as a `duplicate` inbound row pointing at that same ticket.
"""

from __future__ import annotations

import asyncio
import os
import smtplib
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import func, select

from core.db import Database
from core.enums import InboundStatus
from core.ingest.models import InboundMessage
from core.mail.parse import normalize_message_id
from core.tickets.models import Ticket, TicketComment
from tests.support.gateway import SUPPORT, crlf
from tests.support.process import GatewayProcess, free_port

MESSAGES = 150
SENDERS = 3  # concurrent MTA connections, each sending its share one message at a time
KILL_AFTER = (40, 80)  # SIGKILL the gateway once this many messages are acknowledged
DEADLINE = 45.0


@dataclass
class Ledger:
    """What the client was told: Message-ID -> the 250 reply; plus counts of trouble seen."""

    acked: dict[str, str] = field(default_factory=dict)
    troubles: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    changed: threading.Condition = field(default_factory=threading.Condition)

    def ack(self, message_id: str, reply: str) -> None:
        with self.changed:
            self.acked[message_id] = reply
            self.changed.notify_all()

    def fail(self, why: str) -> None:
        with self.changed:
            self.failures.append(why)
            self.changed.notify_all()

    def wait_acked(self, count: int, timeout: float) -> None:
        with self.changed:
            if not self.changed.wait_for(lambda: len(self.acked) >= count or bool(self.failures), timeout):
                raise AssertionError(f"only {len(self.acked)} of {count} messages acknowledged in {timeout}s")
        assert not self.failures, self.failures


class Mta(threading.Thread):
    """Sends its messages one at a time; on a refused connection, a 4xx or a connection lost
    before the final reply it reconnects and sends the same bytes again, until a 250."""

    def __init__(self, port: int, messages: list[tuple[str, bytes]], ledger: Ledger, stop: threading.Event) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.messages = messages
        self.ledger = ledger
        self.stop = stop
        self.deadline = time.monotonic() + DEADLINE

    def run(self) -> None:
        client: smtplib.SMTP | None = None
        try:
            for message_id, data in self.messages:
                while True:
                    if self.stop.is_set() or time.monotonic() > self.deadline:
                        self.ledger.fail(f"{message_id}: gave up without a 250")
                        return
                    try:
                        if client is None:
                            client = smtplib.SMTP("127.0.0.1", self.port, timeout=30)
                            client.ehlo("mta.customer.test")
                        code, reply = self.transaction(client, data)
                    except (smtplib.SMTPException, OSError) as exc:  # refused, reset, dropped
                        code, reply = 0, f"{type(exc).__name__}: {exc}"
                    if code == 250:
                        self.ledger.ack(message_id, reply)
                        break
                    if 500 <= code < 600:
                        self.ledger.fail(f"{message_id}: permanent failure {code} {reply}")
                        return
                    self.ledger.troubles.append(f"{message_id}: {code} {reply}")
                    if client is not None:
                        client.close()
                        client = None
                    self.stop.wait(0.05)  # an MTA's retry interval, shortened
            if client is not None:
                try:
                    client.quit()
                except (smtplib.SMTPException, OSError):
                    pass  # everything is delivered; a gateway killed just now is no concern
        except Exception as exc:  # noqa: BLE001 - reported by the test
            self.ledger.fail(f"client crashed: {exc!r}")
        finally:
            if client is not None:
                client.close()

    @staticmethod
    def transaction(client: smtplib.SMTP, data: bytes) -> tuple[int, str]:
        code, reply = client.mail("bounces@mta.customer.test")
        if code == 250:
            code, reply = client.rcpt(SUPPORT)
        if code == 250:
            code, reply = client.data(data)
        if code != 250 and not 500 <= code < 600:
            client.rset()
        return code, reply.decode(errors="replace")


def build_messages(run: str, count: int) -> list[tuple[str, bytes]]:
    messages = []
    for i in range(count):
        m = EmailMessage()
        m["From"] = f"Customer {i % 7} <customer{i % 7}-{run}@customer.test>"
        m["To"] = SUPPORT
        m["Subject"] = f"crash {run} message {i}"
        m["Message-ID"] = f"<crash-{run}-{i}@customer.test>"
        m.set_content(f"Message {i} of the crash test {run}.\n")
        messages.append((m["Message-ID"], crlf(m.as_bytes())))
    return messages


def send_without_reading_the_reply(port: int, data: bytes) -> smtplib.SMTP:
    """MAIL, RCPT, DATA and the whole message with its final dot, but not the final reply:
    the client will give up on this connection (as an MTA whose reply timer expired)."""
    assert b"\r\n." not in data  # no dot-stuffing needed
    client = smtplib.SMTP("127.0.0.1", port, timeout=30)
    client.ehlo("mta.customer.test")
    assert client.mail("bounces@mta.customer.test")[0] == 250
    assert client.rcpt(SUPPORT)[0] == 250
    client.putcmd("data")
    assert client.getreply()[0] == 354
    client.send(data + b".\r\n")
    return client


async def wait_stored(db: Database, message_id: str, timeout: float = 30.0) -> None:
    """Until an inbound row with this Message-ID is committed."""
    deadline = time.monotonic() + timeout
    while True:
        async with db.unit_of_work() as session:
            found = await session.scalar(
                select(InboundMessage.id).where(InboundMessage.message_id == normalize_message_id(message_id))
            )
        if found is not None:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{message_id} was not stored within {timeout}s")
        await asyncio.sleep(0.02)


async def run_and_crash(
    db: Database, args: list[str], env: dict[str, str], cwd: Path, port: int,
    messages: list[tuple[str, bytes]], in_flight: list[tuple[str, bytes]],
    ledger: Ledger, started: list[GatewayProcess],
) -> list[int]:
    """Start a gateway and the clients; at each mark SIGKILL the gateway while the clients are
    sending and while one message is committed but its 250 not yet read, then start a new one.
    Returns how many client retries had happened by each restart."""
    async def start() -> GatewayProcess:
        gateway = GatewayProcess(args, env, cwd)
        started.append(gateway)
        await asyncio.to_thread(gateway.wait_for_line, "SMTP listening")
        return gateway

    gateway = await start()
    stop = threading.Event()
    clients = [Mta(port, messages[i::SENDERS], ledger, stop) for i in range(SENDERS)]
    for client in clients:
        client.start()
    troubles_at_restart = []
    try:
        for mark, (message_id, data) in zip(KILL_AFTER, in_flight, strict=True):
            await asyncio.to_thread(ledger.wait_acked, mark, DEADLINE)
            unanswered = await asyncio.to_thread(send_without_reading_the_reply, port, data)
            try:
                await wait_stored(db, message_id)
                gateway.kill()
            finally:
                unanswered.close()
            gateway = await start()
            troubles_at_restart.append(len(ledger.troubles))
            # the sender of the unanswered message retries it, like every other
            retry = Mta(port, [(message_id, data)], ledger, stop)
            retry.start()
            clients.append(retry)
        for client in clients:
            await asyncio.to_thread(client.join, DEADLINE)
    finally:
        stop.set()
        for client in clients:
            await asyncio.to_thread(client.join, 30)
    return troubles_at_restart


async def wait_nothing_pending(db: Database, message_ids: list[str], timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        async with db.unit_of_work() as session:
            pending = await session.scalar(
                select(func.count()).select_from(InboundMessage).where(
                    InboundMessage.message_id.in_(message_ids),
                    InboundMessage.status == InboundStatus.pending,
                )
            )
        if pending == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"{pending} inbound rows still pending after {timeout}s")
        await asyncio.sleep(0.1)


async def test_sigkill_mid_stream_loses_nothing_and_duplicates_nothing(
    database_url: str, db: Database, tmp_path: Path
) -> None:
    run = uuid.uuid4().hex[:10]
    messages = build_messages(run, MESSAGES + len(KILL_AFTER))
    smtp_port, http_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    env["HELPDESK_DATABASE_URL"] = database_url
    args = [
        "serve", "--roles", "smtp,api,worker", "--smtp-port", str(smtp_port),
        "--http-port", str(http_port), "--data-dir", str(tmp_path / "data"),
    ]
    ledger = Ledger()
    started: list[GatewayProcess] = []
    try:
        troubles_after_restart = await run_and_crash(
            db, args, env, tmp_path, smtp_port, messages[len(KILL_AFTER):],
            messages[:len(KILL_AFTER)], ledger, started,
        )
        assert not ledger.failures, ledger.failures
        assert len(ledger.acked) == len(messages)
        # each SIGKILL really interrupted the clients (they had to retry), or the test proves little
        assert troubles_after_restart[0] >= 1
        assert troubles_after_restart[1] > troubles_after_restart[0]

        ids = [normalize_message_id(mid) for mid, _ in messages]
        await wait_nothing_pending(db, ids)
        async with db.unit_of_work() as session:
            rows = list(await session.scalars(
                select(InboundMessage).where(InboundMessage.message_id.in_(ids))
            ))
            tickets = {
                subject: ticket_ids for subject, ticket_ids in (await session.execute(
                    select(Ticket.subject, func.array_agg(Ticket.id))
                    .where(Ticket.subject.like(f"crash {run} message %"))
                    .group_by(Ticket.subject)
                )).all()
            }
            comments = dict((await session.execute(
                select(TicketComment.ticket_id, func.count())
                .where(TicketComment.ticket_id.in_([t for ts in tickets.values() for t in ts]))
                .group_by(TicketComment.ticket_id)
            )).all())

        by_message: dict[str, list[InboundMessage]] = defaultdict(list)
        for row in rows:
            by_message[row.message_id].append(row)
        acked_inbound_ids = {reply.rsplit(" ", 1)[-1] for reply in ledger.acked.values()}
        assert acked_inbound_ids <= {str(row.id) for row in rows}, "a 250 named a row that is not there"

        for i, (message_id, _) in enumerate(messages):
            inbound = by_message[normalize_message_id(message_id)]
            assert inbound, f"{message_id} got a 250 but no inbound row exists"
            processed = [r for r in inbound if r.status is InboundStatus.processed]
            assert len(processed) == 1, f"{message_id}: {[(r.status, r.reason) for r in inbound]}"
            original = processed[0]
            for again in inbound:
                if again is original:
                    continue
                assert again.status is InboundStatus.duplicate, (message_id, again.status, again.reason)
                assert again.ticket_id == original.ticket_id
                assert again.duplicate_of_id == original.id
            assert tickets.get(f"crash {run} message {i}") == [original.ticket_id], message_id
            assert comments[original.ticket_id] == 1, f"{message_id}: a delivery added a second comment"
        assert len(tickets) == len(messages)
        # the messages committed just before a SIGKILL were sent twice: the second is a duplicate
        for message_id, _ in messages[:len(KILL_AFTER)]:
            statuses = sorted(r.status.value for r in by_message[normalize_message_id(message_id)])
            assert len(statuses) >= 2 and statuses.count("processed") == 1, (message_id, statuses)

        assert started[-1].terminate() == 0, started[-1].output()
    finally:
        for gateway in started:
            gateway.ensure_dead()
