"""Mail written by others: every message of CPython's email test data, sent over SMTP."""

from __future__ import annotations

import asyncio
import smtplib
from pathlib import Path

from sqlalchemy import func, select

from core.enums import InboundStatus
from core.tickets.models import Ticket
from tests.support.gateway import SUPPORT, Running, crlf, queued_id


def send_all(port: int, messages: list[Path]) -> dict[str, tuple[int, bytes]]:
    replies: dict[str, tuple[int, bytes]] = {}
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("corpus.test")
        for path in messages:
            client.mail("corpus@python.test")
            client.rcpt(SUPPORT)
            replies[path.name] = client.data(crlf(path.read_bytes()))
    return replies


async def test_every_cpython_test_message_ends_as_a_ticket_or_in_quarantine(
    gateway: Running, cpython_email_data: Path
) -> None:
    messages = sorted(cpython_email_data.glob("msg_*.txt"))
    assert len(messages) >= 40, "CPython's test_email data is missing"
    replies = await asyncio.to_thread(send_all, gateway.smtp_port, messages)
    refused = {name: reply for name, reply in replies.items() if reply[0] != 250}
    assert refused == {}

    outcomes = {name: await gateway.settled(queued_id(reply[1])) for name, reply in replies.items()}
    for name, inbound in outcomes.items():
        assert inbound.status in (InboundStatus.processed, InboundStatus.quarantined, InboundStatus.duplicate), name
        if inbound.status is InboundStatus.processed:
            assert inbound.ticket_id is not None, name
        if inbound.status is InboundStatus.quarantined:
            assert inbound.reason, name
        assert inbound.attempts == 0, f"{name} hit an internal error: {inbound.last_error}"

    processed = [i.ticket_id for i in outcomes.values() if i.status is InboundStatus.processed]
    async with gateway.db.unit_of_work() as session:
        found = await session.scalar(select(func.count()).select_from(Ticket).where(Ticket.id.in_(processed)))
    assert found == len(processed) > len(messages) // 2
    # the messages without any From header are the ones quarantined for it
    assert outcomes["msg_11.txt"].status is InboundStatus.quarantined
    assert outcomes["msg_11.txt"].reason == "no From header"
    # and the server is still up
    assert await gateway.send(b"From: a@b.test\r\nSubject: still up\r\n\r\nyes\r\n") == {}
