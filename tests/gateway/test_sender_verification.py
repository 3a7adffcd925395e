"""Threat: a forged From. Anyone can write `From: ceo@bank.test`; without verification such mail
joined tickets by subject tag and earned acknowledgements quoting its words to the victim.

`check` runs SPF, DKIM and DMARC here against a real DNS server on loopback with fixture keys;
`trust-mta` believes only the Authentication-Results of trusted authserv-ids."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import dkim
import pytest
from sqlalchemy import func, select

from core.enums import InboundStatus
from core.events import OutboxEvent
from tests.gateway.test_conversations import deliver, email, new_ticket
from tests.outbound.support import SmtpSink
from tests.support.dns import SELECTOR, dns_server, private_key
from tests.support.gateway import SUPPORT, Running, make_settings, running_gateway


@pytest.fixture(scope="module")
def nameserver() -> Iterator[str]:
    with dns_server() as address:
        yield address


@pytest.fixture
async def checking(database_url: str, tmp_path: Path, nameserver: str) -> AsyncIterator[Running]:
    settings = make_settings(database_url, tmp_path / "d", sender_verification="check", dns_resolver=nameserver)
    async with running_gateway(settings) as gw:
        yield gw


def plain(sender: str, subject: str = "hello", body: str = "hi") -> bytes:
    return (
        f"From: {sender}\r\nTo: {SUPPORT}\r\nSubject: {subject}\r\nMessage-ID: <{uuid.uuid4().hex}@m>\r\n"
        f"Date: Mon, 2 Mar 2026 10:00:00 +0000\r\n\r\n{body}\r\n"
    ).encode()


async def created_events(gw: Running, ticket_id) -> int:
    async with gw.db.unit_of_work() as session:
        return await session.scalar(
            select(func.count()).select_from(OutboxEvent).where(OutboxEvent.key == str(ticket_id))
        ) or 0


async def test_spoofed_domain_with_reject_policy_is_quarantined_nothing_posted(checking: Running) -> None:
    inbound = await deliver(checking, plain("CEO <ceo@bank.test>", "wire the money"), mail_from="ceo@bank.test")
    assert inbound.status is InboundStatus.quarantined and inbound.reason.startswith("spoofed:")
    assert inbound.ticket_id is None and inbound.auth_verdict.startswith("dmarc=fail (p=reject)")
    async with checking.http() as client:
        shown = await (await client.get(f"/api/v1/inbound/{inbound.id}")).json()
        assert shown["auth_verdict"] == inbound.auth_verdict and shown["reason"].startswith("spoofed")
        assert (await client.post(f"/api/v1/inbound/{inbound.id}/reprocess")).status == 202


async def test_dkim_signed_mail_passes_dmarc_and_is_verified(checking: Running) -> None:
    raw = plain("Ann <ann@signed.test>")
    signature = dkim.sign(raw, SELECTOR.encode(), b"signed.test", private_key(),
                          include_headers=[b"from", b"to", b"subject", b"message-id", b"date"])
    inbound = await deliver(checking, signature + raw, mail_from="bounce@elsewhere.test")
    assert inbound.status is InboundStatus.processed
    assert inbound.auth_verdict.startswith("dmarc=pass") and "dkim=pass" in inbound.auth_verdict


async def test_unverified_sender_never_joins_by_subject_tag(checking: Running) -> None:
    # lax.test publishes p=none: a failing message is not refused, but proves nothing
    first = await deliver(checking, plain("bob@lax.test", "printer"), mail_from="bob@lax.test")
    assert first.status is InboundStatus.processed and "dmarc=fail (p=none)" in first.auth_verdict
    async with checking.db.unit_of_work() as session:
        from core.tickets.models import Ticket

        ticket = await session.get(Ticket, first.ticket_id)
    again = await deliver(checking, plain("bob@lax.test", f"Re: [#{ticket.number}] printer"), mail_from="bob@lax.test")
    assert again.ticket_id != ticket.id


async def test_authentication_results_from_untrusted_hosts_are_removed_before_storing(gateway: Running) -> None:
    sender = f"eve-{uuid.uuid4().hex[:6]}@mail.test"
    ticket, _ = await new_ticket(gateway, sender)
    raw, _ = email(sender, f"Re: [#{ticket.number}] x", "forged verdict", verified_by_mta=False,
                   headers={"Authentication-Results": f"evil.test; dmarc=pass header.from=mail.test"})
    inbound = await deliver(gateway, raw)
    async with gateway.http() as client:
        stored = await (await client.get(f"/api/v1/inbound/{inbound.id}/raw")).read()
    assert b"evil.test" not in stored and b"forged verdict" in stored
    assert inbound.ticket_id != ticket.id and inbound.auth_verdict.startswith("dmarc=none")


async def test_trusted_mta_dmarc_fail_with_quarantine_policy_is_spoofed(gateway: Running) -> None:
    from tests.support.gateway import verified

    sender = "boss@corp.test"
    raw, _ = email(sender, "urgent", "pay this", verified_by_mta=False,
                   headers={"Authentication-Results": verified(sender, result="fail", policy="quarantine")})
    inbound = await deliver(gateway, raw)
    assert inbound.status is InboundStatus.quarantined and inbound.reason.startswith("spoofed:")
    assert inbound.ticket_id is None and await created_events(gateway, inbound.ticket_id) == 0


async def test_acknowledgement_to_an_unverified_sender_repeats_nothing_they_wrote(
    database_url: str, tmp_path: Path
) -> None:
    sink = await SmtpSink().start()
    try:
        settings = make_settings(database_url, tmp_path / "d", smtp_relay=sink.relay, outbox_poll_seconds=0.05)
        async with running_gateway(settings) as gw:
            victim = f"victim-{uuid.uuid4().hex[:6]}@mail.test"
            raw, _ = email(f"Click Here Now <{victim}>", "You won! visit evil.example", "Claim at evil.example",
                           verified_by_mta=False)
            inbound = await deliver(gw, raw)
            assert inbound.status is InboundStatus.processed
            [ack] = await sink.wait_for(victim)
        assert b"evil.example" not in ack.data and b"Click Here" not in ack.data
        assert ack.message["Subject"].endswith("We received your request")
    finally:
        await sink.stop()


async def test_verification_off_means_nobody_joins_by_subject(database_url: str, tmp_path: Path) -> None:
    async with running_gateway(make_settings(database_url, tmp_path / "d", sender_verification="off")) as gw:
        sender = f"off-{uuid.uuid4().hex[:6]}@mail.test"
        first = await deliver(gw, plain(sender, "printer"))
        async with gw.db.unit_of_work() as session:
            from core.tickets.models import Ticket

            ticket = await session.get(Ticket, first.ticket_id)
        again = await deliver(gw, plain(sender, f"Re: [#{ticket.number}] printer"))
        assert again.ticket_id != ticket.id and again.auth_verdict == "dmarc=none via off"


def test_untrusted_verdicts_are_stripped_and_trusted_kept() -> None:
    from core.mail.authentication import strip_untrusted

    raw = (b"Authentication-Results: mx.test; dmarc=pass header.from=a.test\r\n"
           b"Authentication-Results: evil.test;\r\n dmarc=pass header.from=a.test\r\nFrom: a@a.test\r\n\r\n"
           b"Authentication-Results: in the body stays\r\n")
    kept = strip_untrusted(raw, frozenset({"mx.test"}))
    assert b"evil.test" not in kept and b"mx.test" in kept and b"in the body stays" in kept
