"""The email pipeline for one inbound row: named steps inside the runner's transaction.

parse ▸ route ▸ classify ▸ loop check ▸ identify sender ▸ thread ▸ new ticket or reply.
`Unprocessable` (the sender's fault) becomes a quarantine with a reason; any other exception
is ours, and the runner rolls the savepoint back and retries later.
"""

from __future__ import annotations

import hashlib
import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select, text, update
from sqlalchemy.ext.asyncio import AsyncSession

from core.agents.models import Agent
from core.attachments import AttachmentStore
from core.config import Settings
from core.customers.models import Customer
from core.customers.service import customer_service
from core.enums import AuthorType, Channel, InboundStatus, MessageDirection, TicketStatus, Visibility
from core.groups.service import group_service
from core.ingest.models import InboundMessage
from core.ingest.threading import Sender, ThreadMatch, find_thread
from core.mail.addresses import support_mailbox
from core.mail.classify import Classification, MailKind, classify
from core.mail.html import resolve_cids
from core.mail.parse import ParsedMail, Unprocessable, parse
from core.mail.reply import extract_reply
from core.secrets import REPLY_TOKEN_SECRET, server_secret
from core.tickets.models import MessageId, Ticket, TicketComment
from core.tickets.service import participant_service, ticket_service

log = logging.getLogger(__name__)

GROUP_CACHE_SECONDS = 60.0


@dataclass(frozen=True)
class Outcome:
    status: InboundStatus
    reason: str | None = None
    matched_rule: str | None = None
    ticket_id: uuid.UUID | None = None
    comment_id: uuid.UUID | None = None
    duplicate_of_id: uuid.UUID | None = None
    mail_kind: str | None = None


@dataclass(frozen=True)
class Route:
    mailbox: str
    group_name: str


@dataclass(frozen=True)
class Message:
    """What the steps after parsing share about one inbound message."""

    inbound: InboundMessage
    mail: ParsedMail
    route: Route
    kind: Classification
    sender: Sender


class Pipeline:
    def __init__(
        self,
        *,
        mailboxes: dict[str, str],
        store: AttachmentStore,
        max_followers: int = 10,
        ticket_inbound_per_hour: int = 30,
    ) -> None:
        self.mailboxes = mailboxes
        self.store = store
        self.max_followers = max_followers
        self.ticket_inbound_per_hour = ticket_inbound_per_hour
        # stable for the life of the process: looked up once, not once per message
        self._group_ids: dict[str, tuple[uuid.UUID, float]] = {}
        self._secret: bytes | None = None

    async def group_id(self, session: AsyncSession, name: str) -> uuid.UUID:
        """The support address's group, created if missing; re-read every minute (groups can change)."""
        cached = self._group_ids.get(name)
        if cached is not None and time.monotonic() - cached[1] < GROUP_CACHE_SECONDS:
            return cached[0]
        group_id = await group_service.ensure(session, name=name)
        self._group_ids[name] = (group_id, time.monotonic())
        return group_id

    async def secret(self, session: AsyncSession) -> bytes:
        if self._secret is None:
            self._secret = await server_secret(session, REPLY_TOKEN_SECRET)
        return self._secret

    @classmethod
    def from_settings(cls, settings: Settings) -> Pipeline:
        return cls(
            mailboxes=settings.support_mailboxes,
            store=AttachmentStore(settings.attachments_dir),
            max_followers=settings.max_followers,
            ticket_inbound_per_hour=settings.ticket_inbound_per_hour,
        )

    async def run(self, session: AsyncSession, inbound: InboundMessage) -> Outcome:
        duplicate = await self.find_duplicate(session, inbound)
        if duplicate is not None:
            return Outcome(
                InboundStatus.duplicate, reason=f"same message as inbound {duplicate.id}",
                matched_rule="duplicate", ticket_id=duplicate.ticket_id,
                comment_id=duplicate.comment_id, duplicate_of_id=duplicate.id,
            )
        try:
            mail = parse(inbound.raw)
            route = self.route(inbound)
        except Unprocessable as exc:
            return Outcome(InboundStatus.quarantined, reason=exc.reason)
        envelope = inbound.mail_from if inbound.source == "smtp" else mail.from_address
        kind = classify(mail, envelope_sender=envelope)
        loop = await self.loop_reason(session, mail)
        if loop is not None:
            return Outcome(InboundStatus.dropped, reason=loop, mail_kind=kind.kind.value)
        sender = await self.identify(session, mail, kind)
        message = Message(inbound, mail, route, kind, sender)
        search = await find_thread(
            session, mail=mail, rcpt_tos=inbound.rcpt_tos, mailboxes=self.mailboxes,
            sender=sender, secret=await self.secret(session),
        )
        if search.match is None:
            return await self.new_ticket(session, message, note=search.note)
        return await self.reply(session, message, search.match)

    async def find_duplicate(
        self, session: AsyncSession, inbound: InboundMessage
    ) -> InboundMessage | None:
        """Same Message-ID and bytes already handled: serialised per key, so two runners agree."""
        key = f"{inbound.message_id or ''}|{inbound.sha256}"
        lock_id = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
        await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock_id})
        query = select(InboundMessage).where(
            InboundMessage.sha256 == inbound.sha256,
            InboundMessage.id != inbound.id,
            InboundMessage.status.in_(
                [InboundStatus.processed, InboundStatus.quarantined, InboundStatus.dropped]
            ),
        )
        if inbound.message_id is not None:
            query = query.where(InboundMessage.message_id == inbound.message_id)
        return await session.scalar(query.limit(1))

    def route(self, inbound: InboundMessage) -> Route:
        for rcpt in inbound.rcpt_tos:
            mailbox = support_mailbox(rcpt, self.mailboxes)
            if mailbox is not None:
                return Route(mailbox, self.mailboxes[mailbox])
        raise Unprocessable("no recipient is a support address")

    async def loop_reason(self, session: AsyncSession, mail: ParsedMail) -> str | None:
        if support_mailbox(mail.from_address, self.mailboxes) is not None:
            return "mail from our own support address (mail loop)"
        if mail.message_id:
            ours = await session.scalar(
                select(MessageId.id).where(
                    MessageId.message_id == mail.message_id,
                    MessageId.direction == MessageDirection.outbound,
                ).limit(1)
            )
            if ours is not None:
                return "carries a Message-ID that we sent (mail loop)"
        return None

    async def identify(self, session: AsyncSession, mail: ParsedMail, kind: Classification) -> Sender:
        agent_id = await session.scalar(
            select(Agent.id).where(Agent.email == mail.from_address, Agent.active.is_(True))
        )
        customer = None
        if agent_id is None and kind.kind is not MailKind.bounce:
            customer = await customer_service.find_or_create(
                session, email=mail.from_address, name=mail.from_name
            )
        return Sender(address=mail.from_address, customer=customer, agent_id=agent_id)

    async def new_ticket(self, session: AsyncSession, m: Message, *, note: str | None = None) -> Outcome:
        if m.kind.kind is MailKind.bounce:
            return Outcome(
                InboundStatus.quarantined, reason="delivery report for no known ticket",
                mail_kind=m.kind.kind.value,
            )
        requester = m.sender.customer or await customer_service.find_or_create(
            session, email=m.mail.from_address, name=m.mail.from_name
        )
        ticket = await self.open_ticket(session, m, requester)
        comment = await self.comment(
            session, m, ticket, body=m.mail.text, rule="new_ticket", author_customer_id=requester.id,
            first=True,
        )
        if not m.kind.automatic:
            await self.add_cc_followers(session, m, ticket)
        return Outcome(
            InboundStatus.processed, reason=note, matched_rule="new_ticket", ticket_id=ticket.id,
            comment_id=comment.id, mail_kind=m.kind.kind.value,
        )

    async def open_ticket(
        self, session: AsyncSession, m: Message, requester: Customer, *, follow_up_of: Ticket | None = None
    ) -> Ticket:
        group_id = await self.group_id(session, m.route.group_name)
        ticket = await ticket_service.create(
            session, subject=m.mail.subject, description=m.mail.text, requester_id=requester.id,
            channel=Channel.email, group_id=group_id, organization_id=requester.organization_id,
            actor_type=AuthorType.customer, actor_id=requester.id, via="email",
            tags=[m.kind.kind.value] if m.kind.automatic else [],
            follow_up_of_id=follow_up_of.id if follow_up_of else None, mail_kind=m.kind.kind.value,
        )
        return ticket

    async def reply(self, session: AsyncSession, m: Message, match: ThreadMatch) -> Outcome:
        kind = m.kind.kind.value
        if match.unproven_agent:
            return Outcome(
                InboundStatus.quarantined, mail_kind=kind, matched_rule=match.rule,
                reason="from an agent's address without a valid reply token (possible forgery)",
            )
        ticket = await ticket_service.resolve_merged(session, match.ticket)
        rule = match.rule if ticket is match.ticket else f"{match.rule}+merged"
        if await self.over_budget(session, ticket):
            return Outcome(
                InboundStatus.quarantined, mail_kind=kind, matched_rule=rule,
                reason=f"ticket #{ticket.number} received over {self.ticket_inbound_per_hour} messages in an hour",
            )
        if m.kind.kind is MailKind.bounce:
            await self.mark_bouncing(session, m.mail.failed_recipients)
        body = extract_reply(m.mail.text, m.mail.html_source)
        if ticket.status is TicketStatus.closed and not m.kind.automatic:
            requester = m.sender.customer or await customer_service.find_or_create(
                session, email=m.mail.from_address, name=m.mail.from_name
            )
            follow_up = await self.open_ticket(session, m, requester, follow_up_of=ticket)
            comment = await self.comment(
                session, m, follow_up, body=body, rule=rule, author_customer_id=requester.id,
                first=True,
            )
            return Outcome(
                InboundStatus.processed, matched_rule=rule, ticket_id=follow_up.id,
                comment_id=comment.id, mail_kind=kind,
                reason=f"follow-up of closed ticket #{ticket.number}",
            )
        as_agent = m.sender.agent_id is not None and match.rule == "token"
        comment = await self.comment(
            session, m, ticket, body=body, rule=rule,
            author_customer_id=None if as_agent else m.sender.customer_id,
            author_agent_id=m.sender.agent_id if as_agent else None,
        )
        if not m.kind.automatic:
            await self.after_human_reply(session, m, ticket, as_agent=as_agent, rule=match.rule)
        return Outcome(
            InboundStatus.processed, matched_rule=rule, ticket_id=ticket.id,
            comment_id=comment.id, mail_kind=kind,
        )

    async def after_human_reply(
        self, session: AsyncSession, m: Message, ticket: Ticket, *, as_agent: bool, rule: str
    ) -> None:
        actor = (AuthorType.agent, m.sender.agent_id) if as_agent else (AuthorType.customer, m.sender.customer_id)
        if as_agent:
            if ticket.first_response_at is None:
                ticket.first_response_at = func.now()
            target = TicketStatus.open if ticket.status is TicketStatus.new else None
        else:
            waiting = (TicketStatus.solved, TicketStatus.pending, TicketStatus.on_hold)
            target = TicketStatus.open if ticket.status in waiting else None
        if target is not None:
            await ticket_service.set_status(
                session, ticket, target, actor_type=actor[0], actor_id=actor[1], via="email"
            )
        if rule == "token":
            await self.add_cc_followers(session, m, ticket)

    async def comment(
        self,
        session: AsyncSession,
        m: Message,
        ticket: Ticket,
        *,
        body: str,
        rule: str,
        author_customer_id: uuid.UUID | None = None,
        author_agent_id: uuid.UUID | None = None,
        first: bool = False,
    ) -> TicketComment:
        """The mail as a comment: automatic mail is kept internal, so nothing answers it."""
        comment = await ticket_service.add_comment(
            session, ticket=ticket,
            author_type=AuthorType.agent if author_agent_id else (
                AuthorType.customer if author_customer_id else AuthorType.system
            ),
            author_customer_id=author_customer_id, author_agent_id=author_agent_id,
            body=body, html_body=m.mail.html, inbound_message_id=m.inbound.id,
            visibility=Visibility.internal if m.kind.automatic else Visibility.public,
            matched_rule=rule, mail_kind=m.kind.kind.value, via="email", announce=not first,
        )
        await self.store_attachments(session, comment, m.mail)
        if m.mail.message_id:
            ticket_service.record_message_id(
                session, ticket_id=ticket.id, message_id=m.mail.message_id,
                direction=MessageDirection.inbound, comment_id=comment.id,
            )
        return comment

    async def store_attachments(
        self, session: AsyncSession, comment: TicketComment, mail: ParsedMail
    ) -> None:
        urls: dict[str, str] = {}
        for part in mail.attachments:
            digest = await self.store.put(part.data)
            attachment = ticket_service.add_attachment(
                session, comment=comment, filename=part.filename,
                content_type=part.content_type, size=len(part.data), sha256=digest,
                content_id=part.content_id, inline=part.inline,
            )
            if part.content_id:
                urls[part.content_id] = f"/api/v1/tickets/{comment.ticket_id}/attachments/{attachment.id}"
        if urls and comment.html_body:
            comment.html_body = resolve_cids(comment.html_body, urls)

    async def add_cc_followers(self, session: AsyncSession, m: Message, ticket: Ticket) -> None:
        """CC'd people become followers: only from mail that created the ticket or held a token."""
        addresses = [
            a for a in dict.fromkeys([*m.mail.to, *m.mail.cc])
            if a != m.mail.from_address and support_mailbox(a, self.mailboxes) is None and "@" in a
        ]
        if not addresses or self.max_followers == 0:
            return
        agents = set(await session.scalars(select(Agent.email).where(Agent.email.in_(addresses))))
        ids = []
        for address in addresses[: self.max_followers * 2]:
            if address not in agents:
                ids.append((await customer_service.find_or_create(session, email=address)).id)
        await participant_service.add_followers(session, ticket, ids, cap=self.max_followers)

    async def over_budget(self, session: AsyncSession, ticket: Ticket) -> bool:
        since = datetime.now(timezone.utc) - timedelta(hours=1)
        count = await session.scalar(
            select(func.count()).select_from(TicketComment).where(
                TicketComment.ticket_id == ticket.id,
                TicketComment.inbound_message_id.is_not(None),
                TicketComment.created_at >= since,
            )
        )
        return (count or 0) >= self.ticket_inbound_per_hour

    async def mark_bouncing(self, session: AsyncSession, addresses: list[str]) -> None:
        if addresses:
            await session.execute(
                update(Customer).where(Customer.email.in_(addresses)).values(bouncing=True)
            )


def apply_outcome(inbound: InboundMessage, outcome: Outcome) -> None:
    inbound.status = outcome.status
    inbound.reason = outcome.reason
    inbound.matched_rule = outcome.matched_rule
    inbound.mail_kind = outcome.mail_kind
    inbound.ticket_id = outcome.ticket_id
    inbound.comment_id = outcome.comment_id
    inbound.duplicate_of_id = outcome.duplicate_of_id
    inbound.processed_at = func.now()
