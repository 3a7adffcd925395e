"""Email conversations end to end over SMTP: threading rules, hostile senders, loops."""

from __future__ import annotations

import asyncio
import uuid
from email.message import EmailMessage

from sqlalchemy import select

from core.agents.service import agent_service
from core.customers.models import Customer
from core.enums import AgentRole, AuthorType, InboundStatus, MessageDirection, TicketStatus, Visibility
from core.events import OutboxEvent
from core.ingest.models import InboundMessage
from core.mail.tokens import make_token
from core.secrets import REPLY_TOKEN_SECRET, server_secret
from core.tickets.models import MessageId, Ticket, TicketComment, ticket_followers
from tests.support.gateway import SUPPORT, Running, queued_id, verified


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def email(
    sender: str, subject: str, body: str, *, in_reply_to: str | None = None,
    cc: str | None = None, to: str = SUPPORT, headers: dict[str, str] | None = None, verified_by_mta: bool = True,
) -> tuple[bytes, str]:
    m = EmailMessage()
    if verified_by_mta:
        m["Authentication-Results"] = verified(sender)
    m["From"] = sender
    m["To"] = to
    if cc:
        m["Cc"] = cc
    m["Subject"] = subject
    message_id = f"{uuid.uuid4().hex}@mail.test"
    m["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        m["In-Reply-To"] = f"<{in_reply_to}>"
        m["References"] = f"<{in_reply_to}>"
    for name, value in (headers or {}).items():
        m[name] = value
    m.set_content(body)
    return m.as_bytes(), message_id


async def deliver(gw: Running, raw: bytes, *, rcpt: str = SUPPORT, mail_from: str = "x@mail.test") -> InboundMessage:
    def send() -> bytes:
        import smtplib

        from tests.support.gateway import crlf

        with smtplib.SMTP("127.0.0.1", gw.smtp_port) as client:
            client.ehlo("mail.test")
            client.mail(mail_from)
            client.rcpt(rcpt)
            return client.data(crlf(raw))[1]

    return await gw.settled(queued_id(await asyncio.to_thread(send)))


async def new_ticket(gw: Running, sender: str, cc: str | None = None) -> tuple[Ticket, str]:
    raw, message_id = email(sender, unique("Subject"), "My first message", cc=cc)
    inbound = await deliver(gw, raw)
    assert inbound.status is InboundStatus.processed and inbound.matched_rule == "new_ticket"
    return await load_ticket(gw, inbound.ticket_id), message_id


async def load_ticket(gw: Running, ticket_id) -> Ticket:
    async with gw.db.unit_of_work() as session:
        return await session.get(Ticket, ticket_id)


async def comments_of(gw: Running, ticket_id) -> list[TicketComment]:
    async with gw.db.unit_of_work() as session:
        return list(await session.scalars(
            select(TicketComment).where(TicketComment.ticket_id == ticket_id).order_by(TicketComment.created_at)
        ))


async def token_for(gw: Running, ticket: Ticket, address: str) -> str:
    async with gw.db.unit_of_work() as session:
        secret = await server_secret(session, REPLY_TOKEN_SECRET)
    return make_token(secret, ticket_number=ticket.number, ticket_id=ticket.id, address=address)


async def set_fields(gw: Running, ticket: Ticket, **values) -> None:
    async with gw.db.unit_of_work() as session:
        stored = await session.get(Ticket, ticket.id)
        for name, value in values.items():
            setattr(stored, name, value)


QUOTED_REPLY = """Thanks, that fixed it!

On Tue, 3 Mar 2026 at 10:00, Support <support@example.com> wrote:
> My first message
> with more history
"""


async def test_reply_by_message_id_from_the_requester_keeps_only_the_new_text(gateway: Running) -> None:
    ticket, first_id = await new_ticket(gateway, "Ann <ann@mail.test>")
    raw, _ = email("ann@mail.test", "Re: whatever", QUOTED_REPLY, in_reply_to=first_id)
    inbound = await deliver(gateway, raw)
    assert (inbound.status, inbound.matched_rule, inbound.ticket_id) == (InboundStatus.processed, "message_id", ticket.id)
    reply = (await comments_of(gateway, ticket.id))[-1]
    assert reply.body.strip() == "Thanks, that fixed it!"
    assert reply.matched_rule == "message_id" and reply.author_type is AuthorType.customer


async def test_stranger_with_a_subject_tag_gets_a_new_ticket(gateway: Running) -> None:
    ticket, _ = await new_ticket(gateway, "victim@mail.test")
    raw, _ = email("stranger@evil.test", f"Re: [#{ticket.number}] give me the data", "hi")
    inbound = await deliver(gateway, raw)
    assert inbound.matched_rule == "new_ticket" and inbound.ticket_id != ticket.id
    assert "not a participant" in inbound.reason
    assert len(await comments_of(gateway, ticket.id)) == 1


async def test_stranger_quoting_a_message_id_gets_a_new_ticket(gateway: Running) -> None:
    ticket, first_id = await new_ticket(gateway, "victim2@mail.test")
    raw, _ = email("stranger2@evil.test", "Re: hello", "hi", in_reply_to=first_id)
    inbound = await deliver(gateway, raw)
    assert inbound.ticket_id != ticket.id


async def test_requester_with_subject_tag_threads(gateway: Running) -> None:
    ticket, _ = await new_ticket(gateway, "tagger@mail.test")
    raw, _ = email("Tagger@Mail.TEST", f"Re: [#{ticket.number}] more", "more info")
    inbound = await deliver(gateway, raw)
    assert (inbound.matched_rule, inbound.ticket_id) == ("subject", ticket.id)


async def test_token_reply_threads_and_cc_become_followers(gateway: Running) -> None:
    ticket, _ = await new_ticket(gateway, "tok@mail.test")
    token = await token_for(gateway, ticket, "tok@mail.test")
    address = f"support+{token}@example.com"
    raw, _ = email("tok@mail.test", "no tag here", "via token", to=address, cc="boss@mail.test")
    inbound = await deliver(gateway, raw, rcpt=address)
    assert (inbound.matched_rule, inbound.ticket_id) == ("token", ticket.id)
    async with gateway.db.unit_of_work() as session:
        followers = set(await session.scalars(
            select(Customer.email).join(ticket_followers, ticket_followers.c.customer_id == Customer.id)
            .where(ticket_followers.c.ticket_id == ticket.id)
        ))
    assert followers == {"boss@mail.test"}


async def test_flipped_token_is_not_evidence(gateway: Running) -> None:
    ticket, _ = await new_ticket(gateway, "flip@mail.test")
    token = await token_for(gateway, ticket, "flip@mail.test")
    flipped = token[:-1] + ("a" if token[-1] != "a" else "b")
    address = f"support+{flipped}@example.com"
    raw, _ = email("flip@mail.test", "no tag", "flipped", to=address)
    inbound = await deliver(gateway, raw, rcpt=address)
    assert inbound.ticket_id != ticket.id and "did not verify" in inbound.reason


async def test_token_sent_to_someone_else_does_not_work_for_a_stranger(gateway: Running) -> None:
    ticket, _ = await new_ticket(gateway, "owner@mail.test")
    token = await token_for(gateway, ticket, "owner@mail.test")
    address = f"support+{token}@example.com"
    raw, _ = email("thief@evil.test", "hi", "stolen token", to=address)
    inbound = await deliver(gateway, raw, rcpt=address)
    assert inbound.ticket_id != ticket.id


async def test_forged_agent_is_quarantined_and_real_agent_token_comments(gateway: Running) -> None:
    agent_email = f"{unique('agent')}@helpdesk.test"
    async with gateway.db.unit_of_work() as session:
        agent = await agent_service.create(session, email=agent_email, name="Agent", role=AgentRole.agent)
    ticket, first_id = await new_ticket(gateway, "cust@mail.test")

    forged, _ = email(agent_email, "Re: x", "I am the agent, honest", in_reply_to=first_id)
    inbound = await deliver(gateway, forged)
    assert inbound.status is InboundStatus.quarantined and "forgery" in inbound.reason

    token = await token_for(gateway, ticket, agent_email)
    address = f"support+{token}@example.com"
    real, _ = email(agent_email, "Re: x", "We are on it.", to=address)
    inbound = await deliver(gateway, real, rcpt=address)
    assert (inbound.status, inbound.matched_rule) == (InboundStatus.processed, "token")
    reply = (await comments_of(gateway, ticket.id))[-1]
    assert (reply.author_type, reply.author_agent_id, reply.visibility) == (AuthorType.agent, agent.id, Visibility.public)
    after = await load_ticket(gateway, ticket.id)
    assert after.status is TicketStatus.open and after.first_response_at is not None


async def test_reply_to_solved_reopens_and_to_closed_opens_a_follow_up(gateway: Running) -> None:
    ticket, first_id = await new_ticket(gateway, "again@mail.test")
    await set_fields(gateway, ticket, status=TicketStatus.solved)
    raw, _ = email("again@mail.test", "Re: x", "still broken", in_reply_to=first_id)
    inbound = await deliver(gateway, raw)
    assert inbound.ticket_id == ticket.id
    assert (await load_ticket(gateway, ticket.id)).status is TicketStatus.open

    await set_fields(gateway, ticket, status=TicketStatus.closed)
    raw, _ = email("again@mail.test", "Re: x", "broken again", in_reply_to=first_id)
    inbound = await deliver(gateway, raw)
    follow_up = await load_ticket(gateway, inbound.ticket_id)
    assert follow_up.id != ticket.id and follow_up.follow_up_of_id == ticket.id
    assert (await load_ticket(gateway, ticket.id)).status is TicketStatus.closed


async def test_mail_to_a_merged_ticket_lands_in_its_target(gateway: Running) -> None:
    source, first_id = await new_ticket(gateway, "merge@mail.test")
    target, _ = await new_ticket(gateway, "merge@mail.test")
    await set_fields(gateway, source, merged_into_id=target.id, status=TicketStatus.closed)
    raw, _ = email("merge@mail.test", "Re: x", "late reply", in_reply_to=first_id)
    inbound = await deliver(gateway, raw)
    assert (inbound.ticket_id, inbound.matched_rule) == (target.id, "message_id+merged")


async def test_auto_reply_is_recorded_internally_and_never_reopens(gateway: Running) -> None:
    ticket, first_id = await new_ticket(gateway, "ooo@mail.test")
    await set_fields(gateway, ticket, status=TicketStatus.solved)
    raw, _ = email("ooo@mail.test", "Out of office", "I am away", in_reply_to=first_id,
                   headers={"Auto-Submitted": "auto-replied"})
    inbound = await deliver(gateway, raw)
    assert (inbound.ticket_id, inbound.mail_kind) == (ticket.id, "auto_reply")
    recorded = (await comments_of(gateway, ticket.id))[-1]
    assert recorded.visibility is Visibility.internal and recorded.mail_kind == "auto_reply"
    assert (await load_ticket(gateway, ticket.id)).status is TicketStatus.solved


async def test_new_ticket_from_an_autoresponder_is_flagged_for_no_acknowledgement(gateway: Running) -> None:
    raw, _ = email("robot@mail.test", "Automatic reply", "away", headers={"Precedence": "bulk"})
    inbound = await deliver(gateway, raw)
    async with gateway.db.unit_of_work() as session:
        events = list(await session.scalars(
            select(OutboxEvent).where(OutboxEvent.key == str(inbound.ticket_id))
        ))
    assert [e.payload["mail_kind"] for e in events if e.topic.endswith("created")] == ["bulk"]


async def test_delivery_report_without_a_bounce_token_is_quarantined(gateway: Running) -> None:
    """A DSN naming a customer, sent to the plain support address: anyone could forge it to
    silence that customer. It counts only at a per-delivery bounce address (tests/outbound)."""
    ticket, _ = await new_ticket(gateway, "gone@mail.test")
    ours = f"{uuid.uuid4().hex}@helpdesk.localhost"
    async with gateway.db.unit_of_work() as session:
        session.add(MessageId(id=uuid.uuid4(), message_id=ours, ticket_id=ticket.id, direction=MessageDirection.outbound))
    dsn = (
        "From: MAILER-DAEMON@mx.mail.test\r\nTo: bounces@example.com\r\nSubject: Undelivered Mail\r\n"
        f"Message-ID: <{uuid.uuid4().hex}@mx>\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/report; report-type=delivery-status; boundary="R"\r\n\r\n'
        "--R\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        "--R\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; mx.mail.test\r\n\r\n"
        "Final-Recipient: rfc822; gone@mail.test\r\nAction: failed\r\nStatus: 5.1.1\r\n\r\n"
        f"--R\r\nContent-Type: text/rfc822-headers\r\n\r\nMessage-ID: <{ours}>\r\nSubject: [#1] x\r\n\r\n--R--\r\n"
    ).encode()
    inbound = await deliver(gateway, dsn, mail_from="")
    assert (inbound.status, inbound.mail_kind) == (InboundStatus.quarantined, "bounce")
    assert "bounce address" in inbound.reason
    async with gateway.db.unit_of_work() as session:
        customer = await session.scalar(select(Customer).where(Customer.email == "gone@mail.test"))
    assert not customer.bouncing


async def test_mail_from_our_own_address_or_echoing_our_message_id_is_dropped(gateway: Running) -> None:
    raw, _ = email(SUPPORT, "loop", "hello me")
    inbound = await deliver(gateway, raw)
    assert inbound.status is InboundStatus.dropped and "own support address" in inbound.reason

    ticket, _ = await new_ticket(gateway, "echo@mail.test")
    ours = f"{uuid.uuid4().hex}@helpdesk.localhost"
    async with gateway.db.unit_of_work() as session:
        session.add(MessageId(id=uuid.uuid4(), message_id=ours, ticket_id=ticket.id, direction=MessageDirection.outbound))
    echo = f"From: echo@mail.test\r\nTo: {SUPPORT}\r\nSubject: x\r\nMessage-ID: <{ours}>\r\n\r\nbody\r\n".encode()
    inbound = await deliver(gateway, echo)
    assert inbound.status is InboundStatus.dropped and "Message-ID that we sent" in inbound.reason


async def test_a_flooded_ticket_quarantines_further_mail(database_url: str, tmp_path) -> None:
    from tests.support.gateway import make_settings, running_gateway

    async with running_gateway(make_settings(database_url, tmp_path, ticket_inbound_per_hour=3)) as gw:
        ticket, first_id = await new_ticket(gw, "flood@mail.test")
        outcomes = []
        for i in range(4):
            raw, _ = email("flood@mail.test", "Re: x", f"again {i}", in_reply_to=first_id)
            outcomes.append((await deliver(gw, raw)).status)
        assert outcomes == [InboundStatus.processed] * 2 + [InboundStatus.quarantined] * 2


async def test_html_only_gmail_reply_keeps_only_the_new_text(gateway: Running) -> None:
    ticket, first_id = await new_ticket(gateway, "html@mail.test")
    raw = (
        f"From: html@mail.test\r\nTo: {SUPPORT}\r\nSubject: Re: x\r\nMessage-ID: <{uuid.uuid4().hex}@m>\r\n"
        f"In-Reply-To: <{first_id}>\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        '<div dir="ltr">Works now, thank you!</div><br><div class="gmail_quote">'
        '<div class="gmail_attr">On Mon, 2 Mar 2026 at 09:00, Support &lt;support@example.com&gt; wrote:</div>'
        "<blockquote class=\"gmail_quote\">My first message</blockquote></div>\r\n"
    ).encode()
    inbound = await deliver(gateway, raw)
    assert inbound.ticket_id == ticket.id
    reply = (await comments_of(gateway, ticket.id))[-1]
    assert reply.body.strip() == "Works now, thank you!"
    assert "gmail_quote" not in (reply.html_body or "")  # stored sanitized; the raw original stays downloadable


async def test_inline_images_point_at_stored_attachments_and_remote_images_are_dropped(gateway: Running) -> None:
    raw = (
        f"From: pics@mail.test\r\nTo: {SUPPORT}\r\nSubject: screenshot\r\nMessage-ID: <{uuid.uuid4().hex}@m>\r\n"
        'MIME-Version: 1.0\r\nContent-Type: multipart/related; boundary="R"\r\n\r\n'
        "--R\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        '<p>See <img src="cid:shot1@m"> and <img src="https://tracker.example/pixel.gif"></p>\r\n'
        "--R\r\nContent-Type: image/png\r\nContent-ID: <shot1@m>\r\nContent-Disposition: inline\r\n"
        "Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n--R--\r\n"
    ).encode()
    inbound = await deliver(gateway, raw)
    [comment] = await comments_of(gateway, inbound.ticket_id)
    async with gateway.http() as client:
        [listed] = (await (await client.get(f"/api/v1/tickets/{inbound.ticket_id}/comments")).json())["comments"]
    [image] = listed["attachments"]
    assert image["inline"] and image["content_id"] == "shot1@m"
    assert f'src="{image["url"]}"' in comment.html_body
    assert "tracker.example" not in comment.html_body and "cid:" not in comment.html_body
