"""Adversarial suite: pathological messages against a running gateway.

Threat: one message (a 400 KB encoded-word header, 3,000-deep MIME, 100,000 parts, 50,000
References) froze the event loop and took gigabytes, then was retried five times as if the
fault were ours. Now each is quarantined at its first attempt with a reason naming the bound,
its raw bytes kept, while HTTP keeps answering and memory stays bounded.
"""

from __future__ import annotations

import asyncio
import resource
from pathlib import Path

import pytest
from sqlalchemy import select

from core.enums import InboundStatus
from core.tickets.models import TicketAttachment
from tests.support import hostile
from tests.support.gateway import Running, crlf, make_settings, queued_id, running_gateway

PATHOLOGICAL = {
    "encoded-word-header": (hostile.encoded_word_header, "header_bytes"),
    "deep-mime-3000": (hostile.deep_mime, "mime_depth"),
    "deep-rfc822-3000": (hostile.deep_messages, "mime_depth"),
    "parts-100000": (hostile.many_parts, "mime_parts"),
    "references-50000": (lambda: hostile.many_references(50_000), "header_bytes"),
    "references-500": (lambda: hostile.many_references(500), "references"),
    "attachments-150": (hostile.many_attachments, "attachments"),
}


def _send(port: int, raw: bytes) -> str:
    import smtplib

    with smtplib.SMTP("127.0.0.1", port, timeout=120) as client:
        client.ehlo("hostile.test")
        client.mail("hostile@mail.test")
        client.rcpt("support@example.com")
        return queued_id(client.data(crlf(raw))[1])


async def _api_answers_meanwhile(gw: Running, stop: asyncio.Event) -> int:
    """GET requests while the message is processed; every one must succeed."""
    answered = 0
    async with gw.http() as client:
        while not stop.is_set():
            response = await client.get("/api/v1/tickets", params={"limit": "1"})
            assert response.status == 200
            answered += 1
            await asyncio.sleep(0.01)
    return answered


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@pytest.mark.parametrize("name", list(PATHOLOGICAL))
async def test_pathological_message_is_quarantined_at_first_attempt_while_api_answers(
    gateway: Running, name: str
) -> None:
    make, limit = PATHOLOGICAL[name]
    raw = make()
    before = _peak_rss_mb()
    stop = asyncio.Event()
    poller = asyncio.create_task(_api_answers_meanwhile(gateway, stop))
    try:
        inbound_id = await asyncio.to_thread(_send, gateway.smtp_port, raw)
        inbound = await gateway.settled(inbound_id, timeout=60)
    finally:
        stop.set()
        answered = await poller
    assert answered > 0
    assert inbound.status is InboundStatus.quarantined and inbound.reason.startswith(f"limit {limit}:")
    assert inbound.attempts == 0 and inbound.last_error is None  # the sender's fault, not a retry of ours
    async with gateway.http() as client:
        kept = await client.get(f"/api/v1/inbound/{inbound.id}/raw")
        assert kept.status == 200 and await kept.read() == crlf(raw)
    assert _peak_rss_mb() - before < 200


async def test_nul_bytes_in_headers_charset_and_filename_never_fail_the_ingest(gateway: Running) -> None:
    inbound = await gateway.settled(await asyncio.to_thread(_send, gateway.smtp_port, hostile.nul_everywhere()))
    assert (inbound.status, inbound.attempts, inbound.last_error) == (InboundStatus.processed, 0, None)
    async with gateway.db.unit_of_work() as session:
        [attachment] = list(await session.scalars(
            select(TicketAttachment).where(TicketAttachment.ticket_id == inbound.ticket_id)
        ))
    assert "\x00" not in attachment.content_type + attachment.filename


async def test_slow_parse_in_the_pool_is_quarantined_by_its_time_limit(database_url: str, tmp_path: Path) -> None:
    """Every message through the parser processes, with a time limit no parse can meet."""
    settings = make_settings(database_url, tmp_path / "data", parse_inline_bytes=0, parse_timeout_seconds=0.001)
    async with running_gateway(settings) as gw:
        raw = hostile.many_parts(900)
        inbound = await gw.settled(await asyncio.to_thread(_send, gw.smtp_port, raw), timeout=60)
    assert inbound.status is InboundStatus.quarantined and inbound.reason.startswith("limit parse_seconds:")
    assert inbound.attempts == 0


async def test_large_message_parsed_in_the_pool_becomes_a_ticket(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path / "data", parse_inline_bytes=0)
    async with running_gateway(settings) as gw:
        raw = hostile.many_parts(900)
        inbound = await gw.settled(await asyncio.to_thread(_send, gw.smtp_port, raw), timeout=60)
    assert inbound.status is InboundStatus.processed and inbound.ticket_id is not None
