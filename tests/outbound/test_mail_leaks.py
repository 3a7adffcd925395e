"""Threats: an agent's emailed reply leaking to the customer, and quoted history kept in HTML.

Each test names the leak it closes and fails without the fix.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from email.utils import getaddresses
from pathlib import Path

import pytest
from sqlalchemy import select

from core.agents.models import Agent
from core.agents.service import agent_service
from core.customers.models import Customer
from core.enums import AgentRole, AuthorType, InboundStatus, Visibility
from core.tickets.models import Ticket, TicketComment, ticket_followers
from core.tickets.service import ticket_service
from tests.gateway.test_conversations import comments_of, deliver, email, token_for
from tests.outbound.support import SmtpSink
from tests.outbound.test_mailer import new_ticket, settled
from tests.support.gateway import SUPPORT, Running, make_settings, running_gateway


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@mail.test"


@pytest.fixture
async def gw(database_url: str, tmp_path: Path, sink: SmtpSink) -> AsyncIterator[Running]:
    settings = make_settings(
        database_url, tmp_path / "data", smtp_relay=sink.relay, mail_retry_seconds=0.2,
        outbox_poll_seconds=0.05,
    )
    async with running_gateway(settings) as running:
        yield running


async def make_agent(gw: Running, role: AgentRole = AgentRole.agent) -> Agent:
    async with gw.db.unit_of_work() as session:
        return await agent_service.create(session, email=unique("agent"), name="Ada Agent", role=role)


async def assigned_ticket(gw: Running, sink: SmtpSink, assignee: Agent) -> tuple[Ticket, str]:
    requester = unique("req")
    ticket, _ = await new_ticket(gw, requester)
    await sink.wait_for(requester)
    async with gw.db.unit_of_work() as session:
        stored = await session.get(Ticket, ticket.id)
        stored.assignee_id = assignee.id
    await settled(gw, ticket.id)
    sink.messages.clear()
    return ticket, requester


async def test_reply_to_an_internal_note_notification_stays_internal(gw: Running, sink: SmtpSink) -> None:
    assignee, colleague = await make_agent(gw), await make_agent(gw)
    ticket, requester = await assigned_ticket(gw, sink, assignee)
    async with gw.db.unit_of_work() as session:
        await ticket_service.add_comment(
            session, ticket=await session.get(Ticket, ticket.id), author_type=AuthorType.agent,
            author_agent_id=colleague.id, body="Between us: the customer broke it.", via="api",
            visibility=Visibility.internal,
        )
    await settled(gw, ticket.id)
    [note] = await sink.wait_for(assignee.email)
    [reply_to] = [a for _, a in getaddresses([note.message["Reply-To"]])]
    sink.messages.clear()

    # the agent answers the note from their mail client, as they would any notification
    raw, _ = email(assignee.email, f"Re: {note.message['Subject']}", "Agreed, they did.",
                   to=reply_to, in_reply_to=note.message["Message-ID"].strip("<>"))
    inbound = await deliver(gw, raw, rcpt=reply_to)
    assert (inbound.status, inbound.matched_rule) == (InboundStatus.processed, "token")
    reply = (await comments_of(gw, ticket.id))[-1]
    assert (reply.author_agent_id, reply.visibility) == (assignee.id, Visibility.internal)
    await settled(gw, ticket.id)
    assert sink.to(requester) == []


async def test_reply_quoting_an_internal_note_message_id_stays_internal(gw: Running, sink: SmtpSink) -> None:
    """Even with the ticket's public token (e.g. from an older mail), answering the note's
    Message-ID keeps the reply internal."""
    assignee, colleague = await make_agent(gw), await make_agent(gw)
    ticket, requester = await assigned_ticket(gw, sink, assignee)
    async with gw.db.unit_of_work() as session:
        await ticket_service.add_comment(
            session, ticket=await session.get(Ticket, ticket.id), author_type=AuthorType.agent,
            author_agent_id=colleague.id, body="Internal only.", via="api", visibility=Visibility.internal,
        )
    await settled(gw, ticket.id)
    [note] = await sink.wait_for(assignee.email)
    public = f"support+{await token_for(gw, ticket, assignee.email)}@example.com"
    raw, _ = email(assignee.email, "Re: note", "Noted.", to=public,
                   in_reply_to=note.message["Message-ID"].strip("<>"))
    await deliver(gw, raw, rcpt=public)
    reply = (await comments_of(gw, ticket.id))[-1]
    assert (reply.body.strip(), reply.visibility) == ("Noted.", Visibility.internal)


async def test_light_agent_email_reply_is_always_internal(gw: Running, sink: SmtpSink) -> None:
    light = await make_agent(gw, AgentRole.light_agent)
    ticket, requester = await assigned_ticket(gw, sink, light)
    address = f"support+{await token_for(gw, ticket, light.email)}@example.com"
    raw, _ = email(light.email, "Re: x", "My opinion, for the team.", to=address)
    inbound = await deliver(gw, raw, rcpt=address)
    assert inbound.matched_rule == "token"
    reply = (await comments_of(gw, ticket.id))[-1]
    assert (reply.author_agent_id, reply.visibility) == (light.id, Visibility.internal)
    await settled(gw, ticket.id)
    assert sink.to(requester) == []


async def test_deactivated_agent_reply_token_is_void(gw: Running, sink: SmtpSink) -> None:
    agent = await make_agent(gw)
    ticket, requester = await assigned_ticket(gw, sink, agent)
    address = f"support+{await token_for(gw, ticket, agent.email)}@example.com"
    async with gw.db.unit_of_work() as session:
        (await session.get(Agent, agent.id)).active = False
    raw, _ = email(agent.email, "Re: x", "I left, but here is the customer's data.", to=address)
    inbound = await deliver(gw, raw, rcpt=address)
    assert inbound.status is InboundStatus.quarantined and inbound.reason.startswith("agent_inactive")
    assert len(await comments_of(gw, ticket.id)) == 1
    await settled(gw, ticket.id)
    assert sink.to(requester) == []


async def test_cc_on_agent_email_reply_never_becomes_a_follower(gw: Running, sink: SmtpSink) -> None:
    agent = await make_agent(gw)
    ticket, requester = await assigned_ticket(gw, sink, agent)
    address = f"support+{await token_for(gw, ticket, agent.email)}@example.com"
    outsider = unique("outsider")
    raw, _ = email(agent.email, "Re: x", "We are on it.", to=address, cc=outsider)
    assert (await deliver(gw, raw, rcpt=address)).matched_rule == "token"
    async with gw.db.unit_of_work() as session:
        followers = list(await session.scalars(
            select(Customer.email).join(ticket_followers, ticket_followers.c.customer_id == Customer.id)
            .where(ticket_followers.c.ticket_id == ticket.id)
        ))
    assert followers == []
    await settled(gw, ticket.id)
    assert sink.to(outsider) == []


async def test_agent_public_reply_goes_out_without_auto_submitted(gw: Running, sink: SmtpSink) -> None:
    agent = await make_agent(gw)
    ticket, requester = await assigned_ticket(gw, sink, agent)
    async with gw.db.unit_of_work() as session:
        await ticket_service.add_comment(
            session, ticket=await session.get(Ticket, ticket.id), author_type=AuthorType.agent,
            author_agent_id=agent.id, body="Fixed.", via="api",
        )
    [mail] = await sink.wait_for(requester)
    assert mail.message["Auto-Submitted"] is None


HTML_REPLY = (
    '<div dir="ltr">Works now, thank you!</div><br>'
    '<div class="gmail_quote"><div class="gmail_attr">On Mon, Support wrote:</div>'
    '<blockquote class="gmail_quote">SECRET QUOTED HISTORY</blockquote></div>'
)
OUTLOOK_REPLY = (
    "<div>Outlook answer here.</div><hr>"
    '<div id="divRplyFwdMsg"><b>From:</b> Support</div><div>SECRET QUOTED HISTORY</div>'
)
APPLE_REPLY = (
    "<div>Apple answer here.</div><div><br><blockquote type=\"cite\"><div>On Mon, Support wrote:</div>"
    "<div>SECRET QUOTED HISTORY</div></blockquote></div>"
)


@pytest.mark.parametrize("markup", [HTML_REPLY, OUTLOOK_REPLY, APPLE_REPLY], ids=["gmail", "outlook", "apple"])
async def test_html_reply_keeps_no_quoted_history_in_html_body(gw: Running, sink: SmtpSink, markup: str) -> None:
    requester = unique("html")
    ticket, first_id = await new_ticket(gw, requester)
    raw = (
        f"From: {requester}\r\nTo: {SUPPORT}\r\nSubject: Re: x\r\nMessage-ID: <{uuid.uuid4().hex}@m>\r\n"
        f"In-Reply-To: <{first_id}>\r\nMIME-Version: 1.0\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        f"{markup}\r\n"
    ).encode()
    assert (await deliver(gw, raw)).ticket_id == ticket.id
    reply: TicketComment = (await comments_of(gw, ticket.id))[-1]
    assert "SECRET QUOTED HISTORY" not in (reply.html_body or "")
    assert "answer here" in reply.html_body or "Works now" in reply.html_body
