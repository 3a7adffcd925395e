"""Threat: Ticket Trick. An address CC'd by someone else (or a robot: a service's noreply or
notifications address) is steered into a ticket by subject tag or a guessed Message-ID, and
reads or writes a conversation it was never party to."""

from __future__ import annotations

import uuid

from sqlalchemy import select

from core.customers.models import Customer
from core.enums import MessageDirection
from core.mail.classify import MailKind, classify
from core.mail.parse import parse
from core.tickets.models import MessageId, ticket_followers
from tests.gateway.test_conversations import deliver, email, new_ticket
from tests.support.gateway import Running


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@mail.test"


async def followers_of(gw: Running, ticket_id) -> set[str]:
    async with gw.db.unit_of_work() as session:
        return set(await session.scalars(
            select(Customer.email).join(ticket_followers, ticket_followers.c.customer_id == Customer.id)
            .where(ticket_followers.c.ticket_id == ticket_id)
        ))


async def test_cc_only_follower_does_not_join_by_subject_tag(gateway: Running) -> None:
    follower = unique("cc")
    ticket, _ = await new_ticket(gateway, unique("req"), cc=follower)
    assert follower in await followers_of(gateway, ticket.id)
    raw, _ = email(follower, f"Re: [#{ticket.number}] hello", "let me in")
    inbound = await deliver(gateway, raw)
    assert inbound.ticket_id != ticket.id and inbound.matched_rule == "new_ticket"


async def test_cc_only_follower_does_not_join_by_someone_elses_message_id(gateway: Running) -> None:
    follower = unique("cc")
    ticket, first_id = await new_ticket(gateway, unique("req"), cc=follower)
    raw, _ = email(follower, "Re: hello", "I saw the first mail's id", in_reply_to=first_id)
    assert (await deliver(gateway, raw)).ticket_id != ticket.id


async def test_cc_only_follower_joins_by_quoting_our_message_id(gateway: Running) -> None:
    follower = unique("cc")
    ticket, _ = await new_ticket(gateway, unique("req"), cc=follower)
    ours = f"{uuid.uuid4().hex}@helpdesk.localhost"
    async with gateway.db.unit_of_work() as session:
        session.add(MessageId(id=uuid.uuid4(), message_id=ours, ticket_id=ticket.id, direction=MessageDirection.outbound))
    raw, _ = email(follower, "Re: [#1] update", "my answer to your update", in_reply_to=ours)
    inbound = await deliver(gateway, raw)
    assert (inbound.ticket_id, inbound.matched_rule) == (ticket.id, "message_id")


async def test_robot_addresses_never_become_followers(gateway: Running) -> None:
    robots = ["noreply@svc.test", "no-reply@svc.test", "notifications@svc.test", "bounce-77@svc.test",
              "donotreply@svc.test", "mailer-daemon@svc.test"]
    person = unique("colleague")
    ticket, _ = await new_ticket(gateway, unique("req"), cc=", ".join([*robots, person]))
    assert await followers_of(gateway, ticket.id) == {person}


async def test_robot_requester_never_joins_by_subject_tag(gateway: Running) -> None:
    robot = f"notifications-{uuid.uuid4().hex[:6]}@svc.test"
    ticket, _ = await new_ticket(gateway, robot)
    raw, _ = email(robot, f"[#{ticket.number}] Your verification code", "code 123456")
    inbound = await deliver(gateway, raw)
    assert inbound.ticket_id != ticket.id


async def test_bulk_mail_never_joins_by_subject_tag(gateway: Running) -> None:
    sender = unique("list")
    ticket, _ = await new_ticket(gateway, sender)
    raw, _ = email(sender, f"[#{ticket.number}] digest", "weekly", headers={"List-Id": "<news.svc.test>"})
    assert (await deliver(gateway, raw)).ticket_id != ticket.id


def test_precedence_auto_reply_is_an_auto_reply() -> None:
    raw = b"From: ooo@mail.test\r\nTo: support@example.com\r\nSubject: Away\r\nPrecedence: auto_reply\r\n\r\naway\r\n"
    assert classify(parse(raw), envelope_sender="ooo@mail.test").kind is MailKind.auto_reply
