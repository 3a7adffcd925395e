from __future__ import annotations

import uuid
from typing import Any

from sqlalchemy import select, tuple_
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core import events
from core.audit.service import audit_service, plain
from core.clock import utcnow
from core.enums import AuthorType, Channel, MessageDirection, TicketStatus, Visibility
from core.pagination import Cursor, page_of
from core.tickets.models import (
    MessageId,
    Ticket,
    TicketAttachment,
    TicketComment,
    ticket_followers,
)
from core.tickets.schemas import TicketOut
from core.tickets.views import ticket_ref

CREATION_AUDITED = (
    "subject", "status", "priority", "type", "requester_id", "assignee_id", "group_id", "tags",
    "external_id", "follow_up_of_id",
)


def snapshot(ticket: Ticket) -> dict:
    return TicketOut.model_validate(ticket).model_dump(mode="json")


class TicketService:
    async def get(self, session: AsyncSession, ref: str) -> Ticket | None:
        """By UUID or by human number; soft-deleted tickets are not found."""
        key = ticket_ref(ref)
        if key is None:
            return None
        query = select(Ticket).where(Ticket.deleted_at.is_(None))
        query = query.where(Ticket.number == key if isinstance(key, int) else Ticket.id == key)
        return await session.scalar(query)

    async def thread_ids(self, session: AsyncSession, ticket: Ticket) -> list[uuid.UUID]:
        """The ticket and every ticket merged into it (at any depth)."""
        ids, frontier = [ticket.id], [ticket.id]
        for _ in range(10):
            frontier = list(
                await session.scalars(select(Ticket.id).where(Ticket.merged_into_id.in_(frontier)))
            )
            if not frontier:
                break
            ids += frontier
        return ids

    async def list_comments(
        self, session: AsyncSession, ticket: Ticket, *, limit: int, cursor: Cursor | None = None
    ) -> tuple[list[TicketComment], Cursor | None]:
        """Oldest first, including the comments of tickets merged into this one."""
        query = select(TicketComment).where(
            TicketComment.ticket_id.in_(await self.thread_ids(session, ticket))
        )
        if cursor is not None:
            query = query.where(
                tuple_(TicketComment.created_at, TicketComment.id) > tuple_(cursor.created_at, cursor.id)
            )
        rows = list(
            await session.scalars(query.order_by(TicketComment.created_at, TicketComment.id).limit(limit + 1))
        )
        return page_of(rows, limit)

    async def create(
        self,
        session: AsyncSession,
        *,
        subject: str,
        description: str,
        requester_id: uuid.UUID,
        channel: Channel,
        group_id: uuid.UUID | None = None,
        organization_id: uuid.UUID | None = None,
        actor_type: AuthorType,
        actor_id: uuid.UUID | None,
        via: str,
        tags: list[str] | None = None,
        follow_up_of_id: uuid.UUID | None = None,
        mail_kind: str | None = None,
        fields: dict[str, Any] | None = None,
        announce: bool = True,
    ) -> Ticket:
        ticket = Ticket(
            id=uuid.uuid4(), subject=subject, description=description, status=TicketStatus.new,
            channel=channel, requester_id=requester_id, group_id=group_id,
            organization_id=organization_id, tags=tags or [], custom_fields={},
            follow_up_of_id=follow_up_of_id,
        )
        for name, value in (fields or {}).items():
            setattr(ticket, name, value)
        self.apply_status_effects(ticket, TicketStatus.new)
        session.add(ticket)
        audit_service.record(
            session, ticket_id=ticket.id, actor_type=actor_type, actor_id=actor_id,
            action="create", via=via,
            changes={
                name: {"from": None, "to": plain(getattr(ticket, name))}
                for name in CREATION_AUDITED
                if getattr(ticket, name) not in (None, [], {})
            },
        )
        if announce:
            await session.flush()  # the number and timestamps the event carries
            self.announce_created(session, ticket, via=via, mail_kind=mail_kind)
        return ticket

    def announce_created(
        self, session: AsyncSession, ticket: Ticket, *, via: str, mail_kind: str | None = None,
        sending_host: str | None = None, verified: bool = True,
    ) -> None:
        """The `created` event, for a ticket already flushed (it carries the number)."""
        # mail_kind lets the mailer leave automatic mail unanswered (no acknowledgement loops);
        # sending_host (the SMTP client) bounds acknowledgements per host
        events.emit(
            session, topic=events.TOPIC_CREATED, ticket=TicketOut.model_validate(ticket), via=via,
            mail_kind=mail_kind, follow_up_of_id=ticket.follow_up_of_id, sending_host=sending_host,
            verified=verified,
        )

    async def set_status(
        self,
        session: AsyncSession,
        ticket: Ticket,
        status: TicketStatus,
        *,
        actor_type: AuthorType,
        actor_id: uuid.UUID | None,
        via: str,
    ) -> bool:
        """Moves the ticket to `status` with its side effects; False if it already was."""
        old = ticket.status
        if old is status:
            return False
        ticket.status = status
        self.apply_status_effects(ticket, old)
        await session.flush()
        audit_service.record(
            session, ticket_id=ticket.id, actor_type=actor_type, actor_id=actor_id,
            action="update", via=via, changes={"status": {"from": old.value, "to": status.value}},
        )
        await session.refresh(ticket)
        events.emit(
            session, topic=events.TOPIC_STATUS_CHANGED, ticket=TicketOut.model_validate(ticket),
            previous_status=old, via=via,
        )
        return True

    @staticmethod
    def apply_status_effects(ticket: Ticket, previous: TicketStatus) -> None:
        """`solved_at` is set when a ticket is solved and cleared when it is reopened."""
        if ticket.status is TicketStatus.solved and previous is not TicketStatus.solved:
            ticket.solved_at = utcnow()
        elif ticket.status not in (TicketStatus.solved, TicketStatus.closed):
            ticket.solved_at = None

    async def resolve_merged(self, session: AsyncSession, ticket: Ticket) -> Ticket:
        """Follows `merged_into` links to the ticket that lives on (bounded: no cycles)."""
        for _ in range(10):
            if ticket.merged_into_id is None:
                return ticket
            target = await session.get(Ticket, ticket.merged_into_id)
            if target is None:
                return ticket
            ticket = target
        return ticket

    async def add_comment(
        self,
        session: AsyncSession,
        *,
        ticket: Ticket,
        author_type: AuthorType,
        body: str,
        via: str,
        html_body: str | None = None,
        visibility: Visibility = Visibility.public,
        author_customer_id: uuid.UUID | None = None,
        author_agent_id: uuid.UUID | None = None,
        inbound_message_id: uuid.UUID | None = None,
        matched_rule: str | None = None,
        mail_kind: str | None = None,
        announce: bool = True,
    ) -> TicketComment:
        """Adds the comment with its audit entry and (if `announce`) its `commented` event.

        A new ticket's first comment is announced by the `created` event instead."""
        comment = TicketComment(
            id=uuid.uuid4(), ticket_id=ticket.id, author_type=author_type,
            author_customer_id=author_customer_id, author_agent_id=author_agent_id,
            visibility=visibility, body=body, html_body=html_body,
            inbound_message_id=inbound_message_id, matched_rule=matched_rule, mail_kind=mail_kind,
        )
        session.add(comment)
        if announce:  # set here, not by the database: the event's snapshot needs no reload
            ticket.updated_at = utcnow()
        actor_id = author_agent_id or author_customer_id
        audit_service.record(
            session, ticket_id=ticket.id, actor_type=author_type, actor_id=actor_id,
            action="comment", via=via,
            changes={"comment": {"id": str(comment.id), "visibility": visibility.value}},
        )
        if not announce:
            return comment
        events.emit(
            session, topic=events.TOPIC_COMMENTED, ticket=TicketOut.model_validate(ticket), via=via,
            comment=events.CommentFacts(
                id=comment.id, visibility=visibility, author_type=author_type, author_id=actor_id,
                body=body, mail_kind=mail_kind,
            ),
        )
        return comment

    def add_attachment(
        self,
        session: AsyncSession,
        *,
        comment: TicketComment,
        filename: str,
        content_type: str,
        size: int,
        sha256: str,
        content_id: str | None,
        inline: bool,
    ) -> TicketAttachment:
        attachment = TicketAttachment(
            id=uuid.uuid4(), ticket_id=comment.ticket_id, comment_id=comment.id,
            filename=filename, content_type=content_type[:255], size=size, sha256=sha256,
            content_id=content_id, inline=inline,
        )
        session.add(attachment)
        return attachment

    def record_message_id(
        self,
        session: AsyncSession,
        *,
        ticket_id: uuid.UUID,
        message_id: str,
        direction: MessageDirection,
        comment_id: uuid.UUID | None = None,
    ) -> None:
        session.add(
            MessageId(
                id=uuid.uuid4(), ticket_id=ticket_id, message_id=message_id,
                direction=direction, comment_id=comment_id,
            )
        )


ticket_service = TicketService()


class ParticipantService:
    """Who may write into a ticket by email: its requester and its followers."""

    async def is_participant(
        self, session: AsyncSession, ticket: Ticket, customer_id: uuid.UUID | None
    ) -> bool:
        if customer_id is None:
            return False
        if ticket.requester_id == customer_id:
            return True
        found = await session.scalar(
            select(ticket_followers.c.customer_id).where(
                ticket_followers.c.ticket_id == ticket.id,
                ticket_followers.c.customer_id == customer_id,
            )
        )
        return found is not None

    async def add_followers(
        self, session: AsyncSession, ticket: Ticket, customer_ids: list[uuid.UUID], *, cap: int
    ) -> int:
        """Adds up to `cap` followers in all; returns how many were added."""
        existing = set(
            await session.scalars(
                select(ticket_followers.c.customer_id).where(ticket_followers.c.ticket_id == ticket.id)
            )
        )
        room = max(0, cap - len(existing))
        new = [c for c in dict.fromkeys(customer_ids) if c not in existing and c != ticket.requester_id]
        new = new[:room]
        if new:
            await session.execute(
                insert(ticket_followers)
                .values([{"ticket_id": ticket.id, "customer_id": c} for c in new])
                .on_conflict_do_nothing()
            )
        return len(new)


participant_service = ParticipantService()
