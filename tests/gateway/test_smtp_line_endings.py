"""DATA line endings over a raw socket: bare LF accepted and stored as CRLF (as Postfix's
`smtpd_forbid_bare_newline = normalize`), the end of data only CRLF.CRLF (no smuggling)."""

from __future__ import annotations

import asyncio
import re
import socket

from sqlalchemy import select

from core.enums import InboundStatus
from core.ingest.models import InboundMessage
from core.tickets.models import TicketComment
from tests.support.gateway import SUPPORT, Running


def raw_session(port: int, data: bytes) -> list[bytes]:
    """EHLO, MAIL, RCPT, DATA, then `data` exactly as given (it carries its own end of data),
    then QUIT; every reply line the server wrote, in order."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        reader = sock.makefile("rb")

        def reply() -> list[bytes]:
            lines = []
            while True:
                line = reader.readline()
                assert line, "connection closed"
                lines.append(line.rstrip(b"\r\n"))
                if line[3:4] != b"-":
                    return lines

        replies = reply()
        for command in (b"EHLO raw.test", b"MAIL FROM:<raw@customer.test>", f"RCPT TO:<{SUPPORT}>".encode(), b"DATA"):
            sock.sendall(command + b"\r\n")
            replies += reply()
        sock.sendall(data)
        replies += reply()
        sock.sendall(b"QUIT\r\n")
        while line := reader.readline():  # whatever else the server says before it closes
            replies.append(line.rstrip(b"\r\n"))
        return replies


def queued(replies: list[bytes]) -> list[str]:
    """The inbound ids of every `250 2.0.0 OK queued as <id>` reply."""
    return [m.group(1).decode() for r in replies if (m := re.match(rb"250 2\.0\.0 OK queued as (\S+)", r))]


def headers(subject: str) -> bytes:
    return f"From: Raw Client <raw@customer.test>\nTo: {SUPPORT}\nSubject: {subject}\n\n".encode()


async def test_a_bare_lf_message_over_1000_bytes_is_accepted_and_stored_as_crlf(gateway: Running) -> None:
    body = b"".join(b"line %03d of a script's report, ended by a bare LF\n" % n for n in range(60))
    message = headers("Bare LF report") + body
    assert len(message) > 3000 and b"\r" not in message
    replies = await asyncio.to_thread(raw_session, gateway.smtp_port, message + b"last line\r\n.\r\n")
    assert not any(r.startswith(b"500") for r in replies), replies
    (inbound_id,) = queued(replies)
    inbound = await gateway.settled(inbound_id)
    assert inbound.status is InboundStatus.processed
    expected = (message + b"last line\n").replace(b"\n", b"\r\n")
    assert inbound.raw == expected  # every line ended by CRLF, nothing else changed
    async with gateway.db.unit_of_work() as session:
        comment = await session.scalar(select(TicketComment).where(TicketComment.ticket_id == inbound.ticket_id))
    assert comment.body.startswith("line 000 of a script's report")
    assert "line 059" in comment.body and "\r" not in comment.body


async def test_one_line_over_1000_bytes_is_still_refused_whatever_ends_it(gateway: Running) -> None:
    for ending in (b"\n", b"\r\n"):
        message = headers("Long line") + b"x" * 1200 + ending
        replies = await asyncio.to_thread(raw_session, gateway.smtp_port, message + b"\r\n.\r\n")
        assert any(r.startswith(b"500 5.5.2 Line too long") for r in replies), replies
        assert not queued(replies)


async def test_only_crlf_dot_crlf_ends_the_data(gateway: Running) -> None:
    """A dot line with a bare LF on either side is content: what follows it (here a whole
    smuggled second transaction) stays inside the one message and is never run as commands."""
    smuggled = (
        b"MAIL FROM:<ceo@example.com>\r\nRCPT TO:<" + SUPPORT.encode() + b">\r\nDATA\r\n"
        b"From: ceo@example.com\r\nSubject: smuggled\r\n\r\nwire the money\r\n"
    )
    for fake_end in (b"\n.\n", b"\r\n.\n", b"\n.\r\n"):
        message = headers("Carrier") + b"first part" + fake_end + smuggled
        replies = await asyncio.to_thread(raw_session, gateway.smtp_port, message + b"\r\n.\r\n")
        ids = queued(replies)
        assert len(ids) == 1, (fake_end, replies)  # one message, one 250
        assert not any(r.startswith((b"503", b"500", b"501")) for r in replies), replies
        inbound = await gateway.settled(ids[0])
        assert b"\r\n.\r\nMAIL FROM:<ceo@example.com>\r\n" in inbound.raw  # kept as content
        assert b"wire the money" in inbound.raw
        async with gateway.db.unit_of_work() as session:
            smuggled_rows = await session.scalar(
                select(InboundMessage.id).where(InboundMessage.mail_from == "ceo@example.com")
            )
        assert smuggled_rows is None


async def test_crlf_mail_is_unchanged(gateway: Running) -> None:
    message = headers("Plain CRLF").replace(b"\n", b"\r\n") + b"Hello\r\n..leading dot\r\n"
    replies = await asyncio.to_thread(raw_session, gateway.smtp_port, message + b".\r\n")
    (inbound_id,) = queued(replies)
    inbound = await gateway.settled(inbound_id)
    assert inbound.raw == message.replace(b"..leading", b".leading")  # RFC 5321 dot-unstuffing
