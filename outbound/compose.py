"""One delivery row ▸ one email: template context, reply token, thread, From/Reply-To mailbox."""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from email.message import Message
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.agents.models import Agent
from core.config import Settings
from core.customers.models import Customer
from core.db import driver_of
from core.enums import AuthorType, DeliveryStatus, Visibility
from core.events import Event, OutboundDelivery, OutboxEvent, SlaWarning, TriggerNotification, parse_event
from core.groups.models import Group
from core.mail.tokens import BOUNCE_PREFIX, INTERNAL, PUBLIC, make_bounce_token, make_token, reply_address
from core.secrets import REPLY_TOKEN_SECRET, server_secret
from core.tickets.models import MessageId
from core.satisfaction.tokens import survey_token
from outbound.recipients import (
    SATISFACTION_SURVEY,
    TICKET_ASSIGNED,
    TICKET_CREATED,
    TICKET_NEW_COMMENT,
    TRIGGER_NOTIFICATION,
)
from outbound.render import Envelope, Renderer, build_message


class CannotCompose(Exception):
    """The delivery can never be sent (its event or ticket is gone)."""


@dataclass(frozen=True)
class Mailbox:
    address: str
    group: str


async def mailbox_for(session: AsyncSession, settings: Settings, group_id: Any) -> Mailbox:
    """The support address of the ticket's group (the first configured one as a fallback)."""
    mailboxes = settings.support_mailboxes
    name = None
    if group_id:
        name = await session.scalar(select(Group.name).where(Group.id == uuid.UUID(str(group_id))))
    for address, group in mailboxes.items():
        if group == name:
            return Mailbox(address, group)
    address, group = next(iter(mailboxes.items()))
    return Mailbox(address, name or group)


FIXED_ACK_SUBJECT = "We received your request"


def bounce_address(settings: Settings, mailbox: str, token: str) -> str:
    """The envelope sender, per delivery (VERP): `support+bounces-<token>@…`. A delivery report
    counts only when it comes back to it, naming the recipient the token was made for."""
    local, _, domain = (settings.mail_bounce_address or mailbox).partition("@")
    return f"{local.partition('+')[0]}+{BOUNCE_PREFIX}{token}@{domain}"


def _auto_submitted(template: str, event: Event, acknowledgement: bool) -> str | None:
    """RFC 3834: what a machine wrote is marked; an agent's own public reply is a person's mail
    (marking it would make the customer's mail system treat it as a robot's and drop replies)."""
    if acknowledgement:
        return "auto-replied"
    comment = getattr(event, "comment", None)
    if (template == TICKET_NEW_COMMENT and comment is not None and comment.author_type is AuthorType.agent
            and comment.visibility is Visibility.public):
        return None
    return "auto-generated"


def new_message_id(mailbox: str) -> str:
    return f"{uuid.uuid4().hex}.hd@{mailbox.partition('@')[2]}"


async def _name_of(session: AsyncSession, author_type: str | None, author_id: Any) -> str:
    if not author_id:
        return "Support" if author_type == "system" else "Someone"
    ident = uuid.UUID(str(author_id))
    if author_type == "agent":
        return await session.scalar(select(Agent.name).where(Agent.id == ident)) or "An agent"
    row = (await session.execute(select(Customer.name, Customer.email).where(Customer.id == ident))).first()
    return (row.name or row.email) if row else "Someone"


@dataclass(frozen=True)
class Locked:
    """A delivery row as `lock_deliveries` hands it out."""

    id: uuid.UUID
    event_id: uuid.UUID
    ticket_id: uuid.UUID | None
    recipient: str
    template: str
    message_id: str
    status: DeliveryStatus
    attempts: int
    agent_name: str | None  # the recipient as an agent, or None
    customer_name: str | None  # … as a customer
    thread: list[str] | None  # the ticket's Message-IDs from before the delivery, oldest first


_LOCK = f"""
SELECT d.id, d.event_id, d.ticket_id, d.recipient, d.template, d.message_id, d.status, d.attempts,
    (SELECT a.name FROM {Agent.__tablename__} a WHERE a.email = d.recipient LIMIT 1),
    (SELECT c.name FROM {Customer.__tablename__} c WHERE c.email = d.recipient LIMIT 1),
    (SELECT array_agg(m.message_id ORDER BY m.created_at, m.id) FROM {MessageId.__tablename__} m
        WHERE m.ticket_id = d.ticket_id AND m.created_at < d.created_at)
FROM {OutboundDelivery.__tablename__} d WHERE d.id = ANY($1::uuid[])
FOR UPDATE OF d SKIP LOCKED
"""


async def lock_deliveries(session: AsyncSession, delivery_ids: list[uuid.UUID]) -> list[Locked]:
    """The delivery rows, locked (those another worker holds are left out), with what each
    message needs: the recipient's name as agent or customer, and the ticket's Message-IDs
    from before it was planned (oldest first) — one round trip for all of them. Plain SQL on
    the session's connection's driver (SQLAlchemy's execution of it cost more than the query), which
    also begins the session's transaction: the locks last until it ends."""
    async with driver_of(session) as driver:
        rows = await driver.fetch(_LOCK, delivery_ids)
    return [Locked(*row[:6], DeliveryStatus(row[6]), *row[7:]) for row in rows]


def ticket_link(template: str | None, number: object) -> str | None:
    return template.replace("{number}", str(number)) if template else None


class Composer:
    def __init__(self, settings: Settings, renderer: Renderer | None = None) -> None:
        self.settings = settings
        self.renderer = renderer or Renderer()
        self._secret: bytes | None = None  # never changes once made
        self._mailboxes: dict[str, tuple[float, Mailbox]] = {}

    async def secret(self, session: AsyncSession) -> bytes:
        if self._secret is None:
            self._secret = await server_secret(session, REPLY_TOKEN_SECRET)
        return self._secret

    async def mailbox(self, session: AsyncSession, group_id: Any) -> Mailbox:
        """`mailbox_for`, remembered for a minute (groups are rarely renamed)."""
        key = str(group_id)
        cached = self._mailboxes.get(key)
        if cached is not None and cached[0] > time.monotonic():
            return cached[1]
        found = await mailbox_for(session, self.settings, group_id)
        self._mailboxes[key] = (time.monotonic() + 60, found)
        return found

    async def compose(
        self, session: AsyncSession, delivery: Any, event: Event | None = None,
    ) -> tuple[Message, str]:
        """The message and its envelope sender, for a row from `lock_deliveries`.
        `event`: the event, if at hand."""
        if event is None:
            row = await session.get(OutboxEvent, delivery.event_id)
            event = parse_event(row.payload) if row is not None else None
            if event is None:
                raise CannotCompose(f"event {delivery.event_id} no longer exists or cannot be read")
        ticket = event.ticket
        mailbox = await self.mailbox(session, ticket.group_id)
        # a reply to an internal note must stay internal: its Reply-To says so (core.mail.tokens)
        comment = getattr(event, "comment", None)
        internal = comment is not None and comment.visibility is Visibility.internal
        token = make_token(
            await self.secret(session), ticket_number=ticket.number, ticket_id=ticket.id,
            address=delivery.recipient, scope=INTERNAL if internal else PUBLIC,
        )
        is_agent = delivery.agent_name is not None
        name = (delivery.agent_name if is_agent else delivery.customer_name) or ""
        acknowledgement = delivery.template == TICKET_CREATED and event.via == "email"
        # to a sender nobody verified (maybe forged): a fixed text, nothing of what they wrote
        # (no subject, no name), so a forged message cannot make us mail its words to anyone
        if acknowledgement and getattr(event, "verified", True) is False:
            name = ""
            ticket = ticket.model_copy(update={"subject": FIXED_ACK_SUBJECT})
            event = event.model_copy(update={"ticket": ticket})
        context = await self.context(session, delivery.template, event, mailbox, name, is_agent)
        subject, template = ticket.subject, delivery.template
        if (isinstance(event, TriggerNotification) and (event.subject is not None or event.body is not None)
                and not (acknowledgement and event.verified is False)):
            # an admin's text (a built-in mail's, when they edited it); never to an unverified sender
            subject, body = await self.notification(session, event, context)
            if event.body is not None:
                context["body"], template = body, TRIGGER_NOTIFICATION
        if delivery.template == SATISFACTION_SURVEY:
            link = f"{(self.settings.public_url or self.settings.base_url).rstrip('/')}/satisfaction/"
            link += survey_token(await self.secret(session), ticket.id)
            context["survey"] = {"good": f"{link}?score=good", "bad": f"{link}?score=bad"}
        text, html = self.renderer.render(template, context)
        envelope = Envelope(
            message_id=delivery.message_id, from_name=mailbox.group, from_address=mailbox.address,
            to_name=name, to_address=delivery.recipient, reply_to=reply_address(mailbox.address, token),
            subject=subject, thread=list(delivery.thread or []),
            auto_submitted=_auto_submitted(delivery.template, event, acknowledgement),
            ticket_number=ticket.number,
        )
        bounce_token = make_bounce_token(
            await self.secret(session), delivery_id=delivery.id, recipient=delivery.recipient
        )
        return build_message(envelope, text, html), bounce_address(self.settings, mailbox.address, bounce_token)

    async def notification(
        self, session: AsyncSession, event: TriggerNotification, context: dict[str, Any]
    ) -> tuple[str, str]:
        """A trigger's subject and body, rendered in the sandbox with `ticket`, `requester`,
        `comment` and `agent` (the assignee). Plain text: the HTML part escapes all of it."""
        ticket = event.ticket
        requester = (await session.execute(
            select(Customer.name, Customer.email).where(Customer.id == ticket.requester_id)
        )).first()
        agent = (await session.execute(
            select(Agent.name, Agent.email).where(Agent.id == ticket.assignee_id)
        )).first() if ticket.assignee_id else None
        comment = event.comment
        values = {
            "ticket": {
                **context["ticket"], "id": str(ticket.id), "type": ticket.type.value if ticket.type else None,
                "channel": ticket.channel.value, "tags": list(ticket.tags), "url": context["ticket_url"],
            },
            "requester": {"name": requester.name if requester else "", "email": requester.email if requester else ""},
            "agent": {"name": agent.name if agent else "", "email": agent.email if agent else ""},
            "comment": {
                "body": comment.body if comment else "",
                "public": comment.visibility is Visibility.public if comment else True,
                "author": await _name_of(session, comment.author_type.value, comment.author_id) if comment else "",
            },
        }
        try:
            subject = self.renderer.render_string(event.subject, values) if event.subject is not None else ticket.subject
            body = self.renderer.render_string(event.body, values) if event.body is not None else ""
            return subject, body
        except Exception as exc:  # an admin's template: the delivery fails visibly, nothing else
            raise CannotCompose(f"trigger {event.trigger_title!r}: template cannot be rendered: {exc}") from exc

    async def context(
        self, session: AsyncSession, template: str, event: Event, mailbox: Mailbox,
        name: str, is_agent: bool,
    ) -> dict[str, Any]:
        """Only what each template needs: never the ticket's description (the customer's body)."""
        ticket = event.ticket
        comment = getattr(event, "comment", None)
        assigned = template == TICKET_ASSIGNED
        actor_id = getattr(event, "actor_id", None)
        return {
            "ticket": {
                "number": ticket.number, "subject": ticket.subject or "(no subject)",
                "status": ticket.status.value, "priority": ticket.priority.value,
            },
            "recipient": {"name": name, "is_agent": is_agent},
            "group": mailbox.group,
            # a page a person can open, when the operator names one (the JSON API answers 401 in a browser)
            "ticket_url": ticket_link(self.settings.agent_ticket_url, ticket.number) if is_agent else None,
            "previous_status": previous.value if (previous := getattr(event, "previous_status", None)) else None,
            "actor_name": await _name_of(session, "agent", actor_id) if assigned and actor_id else None,
            "requester": await _name_of(session, "customer", ticket.requester_id) if assigned else "",
            "comment": {
                "author": await _name_of(session, comment.author_type.value, comment.author_id),
                "body": comment.body, "public": comment.visibility is Visibility.public,
            } if comment is not None and template == TICKET_NEW_COMMENT else {"author": "", "body": "", "public": True},
            "sla": {
                "metric": getattr(event, "metric", None),
                "breach_at": (
                    event.breach_at.isoformat() if isinstance(event, SlaWarning)
                    else ticket.sla_breach_at.isoformat() if ticket.sla_breach_at else None
                ),
            },
        }
