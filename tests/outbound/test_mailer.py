"""Notifications in-process (no Kafka): templates, recipients, headers, threading, retries."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path

import pytest
from sqlalchemy import func, select, update

from core.agents.service import agent_service
from core.customers.models import Customer
from core.enums import (
    AgentRole,
    AuthorType,
    DeliveryStatus,
    InboundStatus,
    MessageDirection,
    TicketStatus,
    Visibility,
)
from core.events import (
    TOPIC_ASSIGNED,
    TOPIC_SLA_WARNING,
    OutboundDelivery,
    OutboxEvent,
    emit,
)
from core.mail.addresses import split_address
from core.mail.tokens import verify_token
from core.secrets import REPLY_TOKEN_SECRET, server_secret
from core.tickets.models import MessageId, Ticket
from core.tickets.service import snapshot, ticket_service
from tests.gateway.test_conversations import deliver, email
from tests.outbound.support import SmtpSink, eventually
from tests.support.gateway import SUPPORT, Running, make_settings, running_gateway


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@mail.test"


@pytest.fixture
async def gw(database_url: str, tmp_path: Path, sink: SmtpSink) -> AsyncIterator[Running]:
    settings = make_settings(
        database_url, tmp_path / "data", smtp_relay=sink.relay, mail_retry_seconds=0.2,
        outbox_poll_seconds=0.05, agent_ticket_url="https://desk.example.test/tickets/{number}",
    )
    async with running_gateway(settings) as running:
        yield running


async def settled(gw: Running, ticket_id: uuid.UUID) -> None:
    """Every event of the ticket published, i.e. handled by the in-process mailer."""
    async def done() -> bool:
        async with gw.db.unit_of_work() as session:
            left = await session.scalar(
                select(func.count()).select_from(OutboxEvent)
                .where(OutboxEvent.key == str(ticket_id), OutboxEvent.published_at.is_(None))
            )
        return left == 0
    await eventually(done, what=f"outbox of ticket {ticket_id} published")


async def deliveries(gw: Running, **where: object) -> list[OutboundDelivery]:
    async with gw.db.unit_of_work() as session:
        query = select(OutboundDelivery).order_by(OutboundDelivery.created_at, OutboundDelivery.recipient)
        for name, value in where.items():
            query = query.where(getattr(OutboundDelivery, name) == value)
        return list(await session.scalars(query))


def parts(message: EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",))
    html = message.get_body(("html",))
    assert text is not None and html is not None
    return text.get_content(), html.get_content()


async def new_ticket(gw: Running, sender: str, *, subject: str = "Printer on fire", body: str = "It burns.",
                     cc: str | None = None) -> tuple[Ticket, str]:
    raw, message_id = email(sender, subject, body, cc=cc)
    inbound = await deliver(gw, raw)
    assert inbound.status is InboundStatus.processed
    async with gw.db.unit_of_work() as session:
        return await session.get(Ticket, inbound.ticket_id), message_id


async def test_acknowledgement_headers_and_a_reply_threads_back(gw: Running, sink: SmtpSink) -> None:
    address = unique("zoe")
    ticket, first_id = await new_ticket(
        gw, f'"Zoë O\'Neil" <{address}>', subject="Printer on fire",
        body="Your verification code is 918273. Please enter it.",
    )
    [ack] = await sink.wait_for(address)
    m = ack.message
    assert m["Subject"] == f"[#{ticket.number}] Printer on fire"
    assert m["In-Reply-To"] == f"<{first_id}>" and f"<{first_id}>" in m["References"]
    assert m["Auto-Submitted"] == "auto-replied" and m["X-Auto-Response-Suppress"] == "All"
    assert getaddresses([m["From"]]) == [("Support", SUPPORT)]
    assert getaddresses([m["To"]]) == [("Zoë O'Neil", address)]
    assert ack.mail_from.startswith("support+bounces-") and ack.mail_from.endswith("@example.com")
    assert ack.rcpt_tos == [address]
    assert b"918273" not in ack.data  # the acknowledgement never quotes the customer's body
    text, html = parts(m)
    assert f"#{ticket.number}" in text and "Printer on fire" in html

    our_id = m["Message-ID"].strip("<>")
    [reply_to] = [a for _, a in getaddresses([m["Reply-To"]])]
    base, token, domain = split_address(reply_to)
    assert (base, domain) == ("support", "example.com")
    async with gw.db.unit_of_work() as session:
        secret = await server_secret(session, REPLY_TOKEN_SECRET)
        stored = await session.scalar(select(MessageId).where(MessageId.message_id == our_id))
    assert verify_token(secret, token, ticket_id=ticket.id, address=address)
    assert (stored.ticket_id, stored.direction) == (ticket.id, MessageDirection.outbound)
    [delivery] = await deliveries(gw, ticket_id=ticket.id)
    assert (delivery.status, delivery.message_id, delivery.template) == (DeliveryStatus.sent, our_id, "ticket_created")

    # the customer answers the notification: to its Reply-To, or quoting its Message-ID
    raw, _ = email(address, f"Re: {m['Subject']}", "Still burning.", in_reply_to=our_id, to=reply_to)
    inbound = await deliver(gw, raw, rcpt=reply_to)
    assert (inbound.ticket_id, inbound.matched_rule) == (ticket.id, "token")
    raw, _ = email(address, "Re: something else", "And smoking.", in_reply_to=our_id)
    inbound = await deliver(gw, raw)
    assert (inbound.ticket_id, inbound.matched_rule) == (ticket.id, "message_id")


async def test_no_acknowledgement_to_automatic_bouncing_or_robot_senders(gw: Running, sink: SmtpSink) -> None:
    bouncing = unique("bouncing")
    async with gw.db.unit_of_work() as session:
        session.add(Customer(id=uuid.uuid4(), email=bouncing, name="", bouncing=True))
    robot = unique("ooo")
    # a bouncing address that writes to us is no longer bouncing (tests/outbound/test_bounces.py);
    # its automatic mail does not clear the mark and is not answered
    senders = {
        robot: {"Auto-Submitted": "auto-replied"},
        unique("list"): {"Precedence": "bulk"},
        f"noreply-{uuid.uuid4().hex[:6]}@mail.test".replace("noreply-", "noreply+"): {},
        bouncing: {"Auto-Submitted": "auto-replied"},
    }
    tickets = []
    for sender, headers in senders.items():
        raw, _ = email(sender, "Hello", "text", headers=headers)
        tickets.append((await deliver(gw, raw)).ticket_id)
    for ticket_id in tickets:
        await settled(gw, ticket_id)
        assert await deliveries(gw, ticket_id=ticket_id) == []
    assert [m for m in sink.messages if set(m.rcpt_tos) & set(senders)] == []


async def test_comments_go_to_the_right_people_and_internal_notes_never_to_customers(
    gw: Running, sink: SmtpSink
) -> None:
    requester, follower = unique("req"), unique("cc")
    ticket, _ = await new_ticket(gw, requester, cc=follower)
    await sink.wait_for(requester)
    async with gw.db.unit_of_work() as session:
        assignee = await agent_service.create(session, email=unique("assignee"), name="Ada Assignee", role=AgentRole.agent)
        other = await agent_service.create(session, email=unique("other"), name="Otto Other", role=AgentRole.agent)
        stored = await session.get(Ticket, ticket.id)
        stored.assignee_id = assignee.id
    await settled(gw, ticket.id)
    sink.messages.clear()

    async with gw.db.unit_of_work() as session:
        stored = await session.get(Ticket, ticket.id)
        await ticket_service.add_comment(
            session, ticket=stored, author_type=AuthorType.agent, author_agent_id=other.id,
            body="We replaced the <b>fuser</b>.\nBcc: nobody@evil.test", via="api",
        )
    await settled(gw, ticket.id)
    assert sorted(r for m in sink.messages for r in m.rcpt_tos) == sorted([requester, follower, assignee.email])
    customer_copy = sink.to(requester)[0].message
    text, html = parts(customer_copy)
    assert "Otto Other wrote" in text and "We replaced the <b>fuser</b>." in text
    assert "&lt;b&gt;fuser&lt;/b&gt;" in html and "<b>fuser</b>" not in html
    # an agent's own words are a person's mail, not a robot's (RFC 3834): no Auto-Submitted
    assert customer_copy["Bcc"] is None and customer_copy["Auto-Submitted"] is None
    assert customer_copy["Subject"] == f"[#{ticket.number}] Printer on fire"
    sink.messages.clear()

    async with gw.db.unit_of_work() as session:
        stored = await session.get(Ticket, ticket.id)
        await ticket_service.add_comment(
            session, ticket=stored, author_type=AuthorType.agent, author_agent_id=other.id,
            body="The customer broke it themselves.", via="api", visibility=Visibility.internal,
        )
    await settled(gw, ticket.id)
    assert [m.rcpt_tos for m in sink.messages] == [[assignee.email]]
    assert "Internal note" in parts(sink.messages[0].message)[0]
    sink.messages.clear()

    # the requester answers by email: the follower and the assignee hear of it, the requester not
    ack = (await deliveries(gw, ticket_id=ticket.id, template="ticket_created"))[0]
    raw, _ = email(requester, "Re: x", "Thanks, works now.", in_reply_to=ack.message_id)
    assert (await deliver(gw, raw)).ticket_id == ticket.id
    await settled(gw, ticket.id)
    assert sorted(r for m in sink.messages for r in m.rcpt_tos) == sorted([follower, assignee.email])
    agent_copy = sink.to(assignee.email)[0].message
    assert "Thanks, works now." in parts(agent_copy)[0]
    # a reply carries the thread: the customer's last message is what it answers
    assert agent_copy["In-Reply-To"] is not None and ack.message_id in agent_copy["References"]


async def test_assignment_status_survey_and_sla_templates(gw: Running, sink: SmtpSink) -> None:
    requester, follower = unique("req"), unique("cc")
    ticket, _ = await new_ticket(gw, f"Rita <{requester}>", cc=follower, subject="VPN <down> & out")
    await sink.wait_for(requester)
    async with gw.db.unit_of_work() as session:
        agent = await agent_service.create(session, email=unique("agent"), name="Ada", role=AgentRole.agent)
        stored = await session.get(Ticket, ticket.id)
        stored.assignee_id = agent.id
        await session.flush()
        await session.refresh(stored)
        emit(session, topic=TOPIC_ASSIGNED, ticket=snapshot(stored), assignee_id=str(agent.id),
             previous_assignee_id=None)
    [assigned] = await sink.wait_for(agent.email)
    text, html = parts(assigned.message)
    assert "assigned to you" in text and "Rita" in text
    assert "VPN &lt;down&gt; &amp; out" in html and assigned.message["Subject"] == f"[#{ticket.number}] VPN <down> & out"
    # agents get a link to the page the operator named (never the JSON API), customers never do
    assert f"#{ticket.number}.\r\nOpen the ticket: https://desk.example.test/tickets/{ticket.number}\r\n" in text
    assert "/api/v1/" not in text

    async with gw.db.unit_of_work() as session:
        stored = await session.get(Ticket, ticket.id)
        await ticket_service.set_status(session, stored, TicketStatus.solved, actor_type=AuthorType.agent,
                                        actor_id=agent.id, via="api")
    solved = [*(await sink.wait_for(requester, 2))[1:], *(await sink.wait_for(follower))]
    for received in solved:
        assert "as solved" in parts(received.message)[0]
        assert "/api/v1/" not in received.data.decode("utf-8", "replace")

    async with gw.db.unit_of_work() as session:
        stored = await session.get(Ticket, ticket.id)
        await ticket_service.set_status(session, stored, TicketStatus.closed, actor_type=AuthorType.system,
                                        actor_id=None, via="job")
        await session.refresh(stored)
        emit(session, topic=TOPIC_SLA_WARNING, ticket=snapshot(stored), metric="next_reply_time",
             breach_at="2030-01-01T10:00:00+00:00")
    # closing sends nothing to the requester: the survey follows solving (tests/core/satisfaction)
    [_, warning] = await sink.wait_for(agent.email, 2)
    assert "next_reply_time" in parts(warning.message)[0] and "2030-01-01" in parts(warning.message)[1]
    await settled(gw, ticket.id)
    assert len(sink.to(follower)) == 1 and len(sink.to(requester)) == 2
    templates = sorted(d.template for d in await deliveries(gw, ticket_id=ticket.id))
    assert templates == sorted([
        "ticket_created", "ticket_assigned", "ticket_status_changed", "ticket_status_changed",
        "ticket_sla_warning",
    ])


async def test_a_redelivered_event_sends_nothing_twice(gw: Running, sink: SmtpSink) -> None:
    requester = unique("again")
    ticket, _ = await new_ticket(gw, requester)
    await sink.wait_for(requester)
    await settled(gw, ticket.id)
    async with gw.db.unit_of_work() as session:
        event = await session.scalar(select(OutboxEvent).where(OutboxEvent.key == str(ticket.id)))
    mailer = gw.gateway.outbound.mailer
    await mailer.handle(event.payload)
    await asyncio.gather(*(mailer.handle(event.payload) for _ in range(3)))  # concurrent redeliveries
    assert len(sink.to(requester)) == 1 and len(await deliveries(gw, ticket_id=ticket.id)) == 1


async def test_a_pending_delivery_attempted_twice_at_once_is_sent_once(gw: Running, sink: SmtpSink) -> None:
    """The attempt's row lock lasts while the relay talks: the second attempt skips the row."""
    requester = unique("locked")
    ticket, _ = await new_ticket(gw, requester)
    await sink.wait_for(requester)
    await settled(gw, ticket.id)
    [delivery] = await deliveries(gw, ticket_id=ticket.id)
    async with gw.db.unit_of_work() as session:  # as if it had never been sent
        await session.execute(
            update(OutboundDelivery).where(OutboundDelivery.id == delivery.id).values(status=DeliveryStatus.pending)
        )
    sink.delay = 0.5  # the first attempt still holds the row when the second comes
    mailer = gw.gateway.outbound.mailer
    first = asyncio.create_task(mailer.attempt(delivery.id))
    await asyncio.sleep(0.2)
    await asyncio.gather(first, mailer.attempt(delivery.id))
    assert len(sink.to(requester)) == 2  # the acknowledgement, and one attempt of the two
    [again] = await deliveries(gw, ticket_id=ticket.id)
    assert (again.status, again.attempts) == (DeliveryStatus.sent, 2)


async def test_temporary_failures_retry_and_permanent_ones_are_visible(gw: Running, sink: SmtpSink) -> None:
    busy, gone = unique("busy"), unique("gone")
    sink.temporary[busy] = 2
    sink.permanent.add(gone)
    busy_ticket, _ = await new_ticket(gw, busy)
    gone_ticket, _ = await new_ticket(gw, gone)
    [received] = await sink.wait_for(busy)

    async def failed() -> list[OutboundDelivery]:
        return [d for d in await deliveries(gw, ticket_id=gone_ticket.id) if d.status is DeliveryStatus.failed]
    [failure] = await eventually(failed, what="the permanent failure recorded")
    assert failure.last_error.startswith("550") and failure.attempts == 1
    [sent] = await deliveries(gw, ticket_id=busy_ticket.id)
    assert (sent.status, sent.attempts, sent.message_id) == (DeliveryStatus.sent, 3, received.message["Message-ID"].strip("<>"))

    async with gw.http() as client:
        async with client.get("/api/v1/deliveries", params={"status": "failed"}) as response:
            assert response.status == 200
            listed = (await response.json())["deliveries"]
    assert any(d["recipient"] == gone and d["last_error"].startswith("550") for d in listed)
    assert all(d["status"] == "failed" for d in listed)
    metrics = gw.gateway.metrics.render().decode()
    assert 'helpdesk_mail_deliveries_total{outcome="failed"}' in metrics
    assert 'helpdesk_mail_deliveries_total{outcome="retry"} 2.0' in metrics


async def test_automatic_replies_are_capped_per_sender_and_hour(database_url: str, tmp_path: Path, sink: SmtpSink) -> None:
    settings = make_settings(database_url, tmp_path / "data", smtp_relay=sink.relay, auto_replies_per_hour=2,
                             outbox_poll_seconds=0.05)
    sender = unique("chatty")
    async with running_gateway(settings) as gw:
        for i in range(4):
            ticket, _ = await new_ticket(gw, sender, subject=f"Question {i}")
            await settled(gw, ticket.id)
        assert len(sink.to(sender)) == 2
        assert 'helpdesk_mail_suppressed_total{reason="rate_limited"} 2.0' in gw.gateway.metrics.render().decode()


async def test_a_batch_is_screened_against_the_hourly_counts_read_once(gw: Running, sink: SmtpSink) -> None:
    """The mailer reads the last hour's automatic mail for a whole batch's addresses in one
    query; `screen` caps on those counts as it did counting each address itself."""
    from outbound.recipients import TICKET_CREATED, TICKET_NEW_COMMENT, Recipient, screen, sent_last_hour

    sender, other = unique("counted"), unique("quiet")
    ticket, _ = await new_ticket(gw, sender)
    await settled(gw, ticket.id)
    await sink.wait_for(sender)  # its acknowledgement: one automatic mail this hour
    chatty = [Recipient(sender.upper(), TICKET_CREATED), Recipient(other, TICKET_CREATED)]
    async with gw.db.unit_of_work() as session:
        counts = await sent_last_hour(session, [*chatty, Recipient(sender, TICKET_NEW_COMMENT)])
        assert counts == {sender: 1}  # addresses as stored (lower case); nothing for `other`
        one_a_day = await screen(session, chatty, mailboxes={SUPPORT: "Support"}, auto_per_hour=1, sent=counts)
        queried = await screen(session, chatty, mailboxes={SUPPORT: "Support"}, auto_per_hour=1)
    for screened in (one_a_day, queried):
        assert [r.address for r in screened.accepted] == [other]
        assert [(r.address, why) for r, why in screened.suppressed] == [(sender.upper(), "rate_limited")]


async def test_without_a_relay_mail_goes_to_the_maildir(database_url: str, tmp_path: Path) -> None:
    settings = make_settings(database_url, tmp_path / "data", outbox_poll_seconds=0.05)
    sender = unique("maildir")
    async with running_gateway(settings) as gw:
        ticket, _ = await new_ticket(gw, sender)
        await settled(gw, ticket.id)
    outbox = tmp_path / "data" / "mail" / "outbox" / "new"
    files = [p.read_bytes() for p in outbox.iterdir()]
    mine = [f for f in files if sender.encode() in f]
    assert len(mine) == 1 and mine[0].startswith(b"Return-Path: <support+bounces-")
    assert f"[#{ticket.number}]".encode() in mine[0]


async def test_an_autoresponder_that_answers_everything_gets_one_mail_and_the_exchange_stops(
    gw: Running, sink: SmtpSink
) -> None:
    """A badly behaved autoresponder (no Auto-Submitted, no Precedence) replies to whatever it
    receives: the acknowledgement goes out once, its answer becomes a comment, nothing more."""
    bot = unique("away")
    ticket, _ = await new_ticket(gw, bot, subject="Out of the office")
    await sink.wait_for(bot)  # the acknowledgement
    for _ in range(5):  # the bot's rounds: answer every mail it got since the last round
        received = sink.to(bot)
        answered = getattr(sink, "_answered", 0)
        if len(received) == answered:
            break
        for mail in received[answered:]:
            m = mail.message
            [reply_to] = [a for _, a in getaddresses([m["Reply-To"]])]
            raw, _ = email(bot, f"Re: {m['Subject']}", "I am away until Monday.",
                           in_reply_to=m["Message-ID"].strip("<>"), to=reply_to)
            inbound = await deliver(gw, raw, rcpt=reply_to)
            assert inbound.ticket_id == ticket.id
        sink._answered = len(received)  # type: ignore[attr-defined]
        await settled(gw, ticket.id)  # whatever the answers trigger has been handled
    assert len(sink.to(bot)) == 1
    async with gw.db.unit_of_work() as session:
        comments = await session.scalar(
            select(func.count()).select_from(MessageId).where(
                MessageId.ticket_id == ticket.id, MessageId.direction == MessageDirection.inbound
            )
        )
    assert comments == 2  # the first mail and the one answer to the acknowledgement
