"""The email pipeline for one inbound row: named steps inside the runner's transaction.

Phase one is pure (parse, route) and may raise `Unprocessable` (the sender's fault: quarantine);
phase two writes. Any other exception is ours: the runner rolls back and retries later.
"""

from __future__ import annotations

import hashlib
import logging
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select, text
from sqlalchemy.ext.asyncio import AsyncSession

from core.attachments import AttachmentStore
from core.customers.service import customer_service
from core.enums import AuthorType, Channel, InboundStatus, MessageDirection
from core.groups.service import group_service
from core.ingest.models import InboundMessage
from core.mail.addresses import support_mailbox
from core.mail.parse import ParsedMail, Unprocessable, parse
from core.tickets.models import TicketComment
from core.tickets.service import ticket_service

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    status: InboundStatus
    reason: str | None = None
    matched_rule: str | None = None
    ticket_id: uuid.UUID | None = None
    comment_id: uuid.UUID | None = None
    duplicate_of_id: uuid.UUID | None = None


@dataclass(frozen=True)
class Route:
    mailbox: str
    group_name: str


class Pipeline:
    def __init__(self, *, mailboxes: dict[str, str], store: AttachmentStore) -> None:
        self.mailboxes = mailboxes
        self.store = store

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
        return await self.create_ticket(session, inbound, mail, route)

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
            InboundMessage.status.in_([InboundStatus.processed, InboundStatus.quarantined]),
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

    async def create_ticket(
        self, session: AsyncSession, inbound: InboundMessage, mail: ParsedMail, route: Route
    ) -> Outcome:
        requester = await customer_service.find_or_create(
            session, email=mail.from_address, name=mail.from_name
        )
        group_id = await group_service.id_by_name(session, route.group_name)
        if group_id is None:  # configured after the last start
            group_id = await group_service.ensure(session, name=route.group_name)
        ticket = await ticket_service.create(
            session, subject=mail.subject, description=mail.text, requester_id=requester.id,
            channel=Channel.email, group_id=group_id, organization_id=requester.organization_id,
            actor_type=AuthorType.customer, actor_id=requester.id, via="email",
        )
        comment = ticket_service.add_comment(
            session, ticket=ticket, author_type=AuthorType.customer,
            author_customer_id=requester.id, body=mail.text, html_body=mail.html,
            inbound_message_id=inbound.id,
        )
        await session.flush()
        await self.store_attachments(session, comment, mail)
        if mail.message_id:
            ticket_service.record_message_id(
                session, ticket_id=ticket.id, message_id=mail.message_id,
                direction=MessageDirection.inbound, comment_id=comment.id,
            )
        return Outcome(
            InboundStatus.processed, matched_rule="new_ticket", ticket_id=ticket.id,
            comment_id=comment.id,
        )

    async def store_attachments(
        self, session: AsyncSession, comment: TicketComment, mail: ParsedMail
    ) -> None:
        for part in mail.attachments:
            digest = await self.store.put(part.data)
            ticket_service.add_attachment(
                session, comment=comment, filename=part.filename,
                content_type=part.content_type, size=len(part.data), sha256=digest,
                content_id=part.content_id, inline=part.inline,
            )


def apply_outcome(inbound: InboundMessage, outcome: Outcome) -> None:
    inbound.status = outcome.status
    inbound.reason = outcome.reason
    inbound.matched_rule = outcome.matched_rule
    inbound.ticket_id = outcome.ticket_id
    inbound.comment_id = outcome.comment_id
    inbound.duplicate_of_id = outcome.duplicate_of_id
    inbound.processed_at = func.now()
