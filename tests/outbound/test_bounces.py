"""Threat: forged bounces silence a customer; a real one is never cleared.

Our mail goes out with a per-delivery envelope sender (VERP); a delivery report counts only
there, with a matching Final-Recipient."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import select

from core.customers.models import Customer
from core.enums import InboundStatus, Visibility
from tests.gateway.test_conversations import comments_of, deliver, email
from tests.outbound.support import SmtpSink
from tests.outbound.test_mailer import new_ticket
from tests.support.gateway import Running, make_settings, running_gateway


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@mail.test"


@pytest.fixture
async def gw(database_url: str, tmp_path: Path, sink: SmtpSink) -> AsyncIterator[Running]:
    settings = make_settings(database_url, tmp_path / "data", smtp_relay=sink.relay, outbox_poll_seconds=0.05)
    async with running_gateway(settings) as running:
        yield running


def dsn(final_recipient: str) -> bytes:
    return (
        "From: MAILER-DAEMON@mx.mail.test\r\nTo: whoever@example.com\r\nSubject: Undelivered Mail\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@mx>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="R"\r\n\r\n'
        "--R\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--R\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.mail.test\r\n\r\n"
        f"Final-Recipient: rfc822; {final_recipient}\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n--R--\r\n"
    ).encode()


async def bouncing(gw: Running, address: str) -> bool:
    async with gw.db.unit_of_work() as session:
        return (await session.scalar(select(Customer).where(Customer.email == address))).bouncing


async def test_bounce_counts_only_at_its_verp_address_with_matching_final_recipient(gw: Running, sink: SmtpSink) -> None:
    customer, other = unique("gone"), unique("other")
    ticket, _ = await new_ticket(gw, customer)
    [ack] = await sink.wait_for(customer)
    verp = ack.mail_from
    assert verp.startswith("support+bounces-")

    # the right address, but a report about someone else: not evidence about this delivery
    inbound = await deliver(gw, dsn(other), rcpt=verp, mail_from="")
    assert inbound.status is InboundStatus.quarantined and "Final-Recipient" in inbound.reason
    # a forged token
    forged = verp.replace("bounces-", "bounces-x", 1)
    inbound = await deliver(gw, dsn(customer), rcpt=forged, mail_from="")
    assert inbound.status is InboundStatus.quarantined
    assert not await bouncing(gw, customer)

    inbound = await deliver(gw, dsn(customer), rcpt=verp, mail_from="")
    assert (inbound.status, inbound.matched_rule, inbound.ticket_id) == (InboundStatus.processed, "bounce", ticket.id)
    assert (await comments_of(gw, ticket.id))[-1].visibility is Visibility.internal
    assert await bouncing(gw, customer)


async def test_bouncing_is_cleared_by_the_api_and_by_mail_from_the_address(gw: Running, sink: SmtpSink) -> None:
    customer = unique("back")
    ticket, _ = await new_ticket(gw, customer)
    [ack] = await sink.wait_for(customer)
    await deliver(gw, dsn(customer), rcpt=ack.mail_from, mail_from="")
    assert await bouncing(gw, customer)
    async with gw.db.unit_of_work() as session:
        customer_id = (await session.scalar(select(Customer).where(Customer.email == customer))).id
    async with gw.http() as client:
        response = await client.put(f"/api/v1/customers/{customer_id}", json={"bouncing": False})
        assert response.status == 200 and (await response.json())["bouncing"] is False

    async with gw.db.unit_of_work() as session:
        (await session.get(Customer, customer_id)).bouncing = True
    raw, _ = email(customer, "I am back", "new mailbox works")
    await deliver(gw, raw)
    assert not await bouncing(gw, customer)
