"""SMTP ingress over a real loopback socket: codes, durability, tickets."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage

import pytest
from sqlalchemy import func, select, text

from core.enums import InboundStatus, TicketStatus
from core.ingest.models import InboundMessage
from core.tickets.models import Ticket, TicketAttachment, TicketComment
from tests.support.gateway import SUPPORT, Running, crlf, make_settings, queued_id, running_gateway


def mail(subject: str, body: str = "Hello there", *, sender: str = "Jane Doe <jane@customer.test>", message_id: str | None = None) -> EmailMessage:
    m = EmailMessage()
    m["From"] = sender
    m["To"] = SUPPORT
    m["Subject"] = subject
    if message_id:
        m["Message-ID"] = message_id
    m.set_content(body)
    return m


def ehlo_and_send(port: int, data: bytes, rcpt: list[str]) -> tuple[int, bytes]:
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.ehlo("client.test")
        client.mail("sender@customer.test")
        for address in rcpt:
            client.rcpt(address)
        return client.data(crlf(data))


async def test_new_mail_becomes_a_ticket_after_a_committed_250(gateway: Running) -> None:
    message = mail("My printer is on fire", "It started this morning.", message_id="<fire-1@customer.test>")
    code, reply = await asyncio.to_thread(ehlo_and_send, gateway.smtp_port, message.as_bytes(), [SUPPORT])
    assert code == 250 and reply.startswith(b"2.0.0 OK queued as")
    inbound = await gateway.settled(queued_id(reply))
    assert inbound.status is InboundStatus.processed
    assert inbound.matched_rule == "new_ticket"
    async with gateway.db.unit_of_work() as session:
        ticket = await session.get(Ticket, inbound.ticket_id)
        comments = list(await session.scalars(select(TicketComment).where(TicketComment.ticket_id == ticket.id)))
    assert ticket.subject == "My printer is on fire"
    assert ticket.status is TicketStatus.new
    assert ticket.channel.value == "email"
    assert [c.body for c in comments] == ["It started this morning."]
    assert comments[0].visibility.value == "public"
    assert inbound.message_id == "fire-1@customer.test"
    assert b"It started this morning." in inbound.raw  # the original is kept


async def test_ehlo_advertises_the_contracted_extensions(gateway: Running) -> None:
    def ehlo() -> str:
        with smtplib.SMTP("127.0.0.1", gateway.smtp_port) as client:
            return client.ehlo("client.test")[1].decode()

    features = (await asyncio.to_thread(ehlo)).upper().splitlines()
    for feature in ("SIZE 26214400", "8BITMIME", "SMTPUTF8", "PIPELINING"):
        assert feature in features


async def test_unknown_recipient_is_refused_with_550_5_1_1(gateway: Running) -> None:
    def rcpt() -> tuple[int, bytes]:
        with smtplib.SMTP("127.0.0.1", gateway.smtp_port) as client:
            client.ehlo("client.test")
            client.mail("sender@customer.test")
            return client.rcpt("nobody@example.com")

    code, reply = await asyncio.to_thread(rcpt)
    assert code == 550 and reply.startswith(b"5.1.1")


async def test_plus_addressed_support_recipient_is_accepted(gateway: Running) -> None:
    refused = await gateway.send(mail("plus").as_bytes(), rcpt=["Support+abc@Example.COM"])
    assert refused == {}


async def test_too_many_recipients_get_452(database_url: str, tmp_path) -> None:
    settings = make_settings(database_url, tmp_path, max_recipients=2)
    async with running_gateway(settings) as gw:
        def rcpts() -> list[int]:
            with smtplib.SMTP("127.0.0.1", gw.smtp_port) as client:
                client.ehlo("client.test")
                client.mail("sender@customer.test")
                return [client.rcpt(SUPPORT)[0] for _ in range(3)]

        assert await asyncio.to_thread(rcpts) == [250, 250, 452]


async def test_oversized_message_gets_552_5_3_4_and_stores_nothing(database_url: str, tmp_path) -> None:
    settings = make_settings(database_url, tmp_path, max_message_bytes=10_000)
    async with running_gateway(settings) as gw:
        big = mail("too big", ("x" * 70 + "\n") * 300, message_id="<too-big@customer.test>").as_bytes()

        def declared() -> tuple[int, bytes]:
            with smtplib.SMTP("127.0.0.1", gw.smtp_port) as client:
                client.ehlo("client.test")
                return client.mail("sender@customer.test", options=[f"SIZE={len(big)}"])

        code, reply = await asyncio.to_thread(declared)
        assert (code, reply[:5]) == (552, b"5.3.4")
        # and without a SIZE declaration: refused after DATA
        code, reply = await asyncio.to_thread(ehlo_and_send, gw.smtp_port, big, [SUPPORT])
        assert (code, reply[:5]) == (552, b"5.3.4")
        async with gw.db.unit_of_work() as session:
            count = await session.scalar(
                select(func.count()).select_from(InboundMessage).where(InboundMessage.message_id == "too-big@customer.test")
            )
        assert count == 0


async def test_connections_over_the_limit_get_421(database_url: str, tmp_path) -> None:
    settings = make_settings(database_url, tmp_path, max_connections=2)
    async with running_gateway(settings) as gw:
        def over_limit() -> int:
            held = [smtplib.SMTP("127.0.0.1", gw.smtp_port) for _ in range(2)]
            try:
                with pytest.raises(smtplib.SMTPConnectError) as refused:
                    smtplib.SMTP("127.0.0.1", gw.smtp_port)
                return refused.value.smtp_code
            finally:
                for client in held:
                    client.close()

        assert await asyncio.to_thread(over_limit) == 421


async def test_database_down_means_451_4_3_0_then_recovery(tmp_path) -> None:
    """With PostgreSQL stopped, SMTP stays up and tells senders to retry; once back, 250."""
    from core.embedded_pg import EmbeddedPostgres
    from core.migrate import upgrade

    server = EmbeddedPostgres(tmp_path / "pg")
    url = await asyncio.to_thread(server.start)
    try:
        await upgrade(url)
        async with running_gateway(make_settings(url, tmp_path / "data")) as gw:
            async def hold() -> None:  # several pooled connections, all to die with the server
                async with gw.gateway.db.unit_of_work() as session:
                    await session.execute(text("SELECT pg_sleep(0.05)"))
            await asyncio.gather(*(hold() for _ in range(4)))
            await asyncio.to_thread(server.stop)
            code, reply = await asyncio.to_thread(
                ehlo_and_send, gw.smtp_port, mail("db down").as_bytes(), [SUPPORT]
            )
            assert (code, reply[:5]) == (451, b"4.3.0")
            await asyncio.to_thread(server.start)
            code, reply = await asyncio.to_thread(
                ehlo_and_send, gw.smtp_port, mail("db back").as_bytes(), [SUPPORT]
            )
            assert code == 250
            assert (await gw.settled(queued_id(reply))).status is InboundStatus.processed
    finally:
        await asyncio.to_thread(server.stop)


async def test_same_message_delivered_twice_makes_one_ticket(gateway: Running) -> None:
    raw = mail("Delivered twice", message_id="<twice-1@customer.test>").as_bytes()
    first = await asyncio.to_thread(ehlo_and_send, gateway.smtp_port, raw, [SUPPORT])
    second = await asyncio.to_thread(ehlo_and_send, gateway.smtp_port, raw, [SUPPORT])
    a = await gateway.settled(queued_id(first[1]))
    b = await gateway.settled(queued_id(second[1]))
    statuses = sorted([a.status.value, b.status.value])
    assert statuses == ["duplicate", "processed"]
    assert a.ticket_id == b.ticket_id
    async with gateway.db.unit_of_work() as session:
        count = await session.scalar(select(func.count()).select_from(Ticket).where(Ticket.subject == "Delivered twice"))
    assert count == 1


async def test_attachments_are_stored_content_addressed_with_safe_names(gateway: Running) -> None:
    message = mail("With files")
    payload = bytes(range(256)) * 10
    message.add_attachment(payload, maintype="application", subtype="octet-stream", filename="../../etc/pass\x07wd")
    code, reply = await asyncio.to_thread(ehlo_and_send, gateway.smtp_port, message.as_bytes(), [SUPPORT])
    inbound = await gateway.settled(queued_id(reply))
    async with gateway.db.unit_of_work() as session:
        attachment = await session.scalar(select(TicketAttachment).where(TicketAttachment.ticket_id == inbound.ticket_id))
    assert attachment.filename == "password" or attachment.filename == "passwd"
    assert attachment.size == len(payload)
    stored = gateway.gateway.settings.attachments_dir / attachment.sha256[:2] / attachment.sha256[2:4] / attachment.sha256
    assert stored.read_bytes() == payload


async def test_unparseable_sender_is_quarantined_with_a_reason(gateway: Running) -> None:
    raw = b"From: not an address\r\nTo: support@example.com\r\nSubject: who am I\r\n\r\nbody\r\n"
    code, reply = await asyncio.to_thread(ehlo_and_send, gateway.smtp_port, raw, [SUPPORT])
    assert code == 250  # accepted: a human decides about it, nothing is lost
    inbound = await gateway.settled(queued_id(reply))
    assert inbound.status is InboundStatus.quarantined
    assert "From" in inbound.reason
    assert inbound.ticket_id is None


async def test_two_from_mailboxes_are_quarantined(gateway: Running) -> None:
    raw = b"From: a@customer.test, b@customer.test\r\nTo: support@example.com\r\nSubject: two\r\n\r\nbody\r\n"
    code, reply = await asyncio.to_thread(ehlo_and_send, gateway.smtp_port, raw, [SUPPORT])
    inbound = await gateway.settled(queued_id(reply))
    assert inbound.status is InboundStatus.quarantined
    assert "exactly one mailbox" in inbound.reason


async def test_recipient_address_picks_the_group(gateway: Running) -> None:
    code, reply = await asyncio.to_thread(
        ehlo_and_send, gateway.smtp_port, mail("Invoice question").as_bytes(), ["billing@example.com"]
    )
    inbound = await gateway.settled(queued_id(reply))
    async with gateway.db.unit_of_work() as session:
        ticket = await session.get(Ticket, inbound.ticket_id)
        from core.groups.models import Group
        group = await session.get(Group, ticket.group_id)
    assert group.name == "Billing"


async def test_raw_8bit_headers_are_stored_and_ingested(gateway: Running) -> None:
    raw = (
        b"From: =?utf-8?q?J=C3=BCrgen?= <jurgen@customer.test>\r\nTo: support@example.com\r\n"
        b"Subject: Gr\xc3\xbc\xdfe \xff\r\nMessage-ID: <\xff\xfe-8bit@customer.test>\r\n\r\nK\xf6rper\r\n"
    )
    code, reply = await asyncio.to_thread(ehlo_and_send, gateway.smtp_port, raw, [SUPPORT])
    assert code == 250
    inbound = await gateway.settled(queued_id(reply))
    assert inbound.status is InboundStatus.processed and inbound.attempts == 0
    assert inbound.raw.startswith(b"From: =?utf-8?q?J=C3=BCrgen?=")  # the original bytes, untouched


async def test_pipelined_commands_get_every_reply_in_order(gateway: Running) -> None:
    """Replies to pipelined commands are held while the next command is buffered and written
    together (RFC 2920): none may be lost, reordered, or held while the server waits to read."""
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.smtp_port)

    async def replies(count: int) -> list[str]:
        lines: list[str] = []
        while len([line for line in lines if line[3:4] != "-"]) < count:
            lines.append((await asyncio.wait_for(reader.readline(), 10)).decode().rstrip())
        return [line for line in lines if line[3:4] != "-"]

    def message(n: int) -> bytes:
        return crlf(mail(f"pipelined {n}", message_id=f"<pipelined-{n}@customer.test>").as_bytes()) + b".\r\n"

    assert (await replies(1))[0].startswith("220")
    writer.write(b"EHLO client.test\r\nMAIL FROM:<jane@customer.test>\r\nRCPT TO:<nobody@example.com>\r\n"
                 b"RCPT TO:<" + SUPPORT.encode() + b">\r\nDATA\r\n")
    assert [r[:3] for r in await replies(5)] == ["250", "250", "550", "250", "354"]
    # the end of one message with the next transaction behind it: its 250 waits for theirs
    writer.write(message(1) + b"MAIL FROM:<jane@customer.test>\r\nRCPT TO:<" + SUPPORT.encode() + b">\r\nDATA\r\n")
    first = await replies(4)
    assert [r[:3] for r in first] == ["250", "250", "250", "354"] and "queued as" in first[0]
    writer.write(message(2) + b"NOOP\r\nQUIT\r\n")
    second = await replies(3)
    assert [r[:3] for r in second] == ["250", "250", "221"] and "queued as" in second[0]
    writer.close()
    for reply in (first[0], second[0]):
        assert (await gateway.settled(queued_id(reply.encode()))).status is InboundStatus.processed
