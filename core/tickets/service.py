from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import Select, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession

from core import events
from core.audit.service import audit_service
from core.enums import AuthorType, Channel, MessageDirection, TicketStatus, Visibility
from core.pagination import Cursor
from core.tickets.models import MessageId, Ticket, TicketAttachment, TicketComment
from core.tickets.schemas import TicketOut


def snapshot(ticket: Ticket) -> dict:
    return TicketOut.model_validate(ticket).model_dump(mode="json")


class TicketService:
    async def get(self, session: AsyncSession, ref: str) -> Ticket | None:
        """By UUID or by human number; soft-deleted tickets are not found."""
        query = select(Ticket).where(Ticket.deleted_at.is_(None))
        if ref.isdigit() and len(ref) < 19:
            query = query.where(Ticket.number == int(ref))
        else:
            try:
                query = query.where(Ticket.id == uuid.UUID(ref))
            except ValueError:
                return None
        return await session.scalar(query)

    async def list(
        self,
        session: AsyncSession,
        *,
        limit: int,
        cursor: Cursor | None = None,
        filters: dict[str, object] | None = None,
    ) -> tuple[Sequence[Ticket], Cursor | None]:
        """Newest first, keyset-paginated on (created_at, id): stable under inserts."""
        query: Select = select(Ticket).where(Ticket.deleted_at.is_(None))
        for name, value in (filters or {}).items():
            query = query.where(getattr(Ticket, name) == value)
        if cursor is not None:
            query = query.where(
                tuple_(Ticket.created_at, Ticket.id) < tuple_(cursor.created_at, cursor.id)
            )
        rows = list(
            await session.scalars(
                query.order_by(Ticket.created_at.desc(), Ticket.id.desc()).limit(limit + 1)
            )
        )
        next_cursor = Cursor(rows[limit - 1].created_at, rows[limit - 1].id) if len(rows) > limit else None
        return rows[:limit], next_cursor

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
    ) -> Ticket:
        ticket = Ticket(
            id=uuid.uuid4(), subject=subject, description=description, status=TicketStatus.new,
            channel=channel, requester_id=requester_id, group_id=group_id,
            organization_id=organization_id, tags=[], custom_fields={},
        )
        session.add(ticket)
        await session.flush()
        audit_service.record(
            session, ticket_id=ticket.id, actor_type=actor_type, actor_id=actor_id,
            action="create", via=via,
            changes={"status": {"from": None, "to": ticket.status.value}},
        )
        events.emit(session, topic=events.TOPIC_CREATED, ticket=snapshot(ticket), via=via)
        return ticket

    def add_comment(
        self,
        session: AsyncSession,
        *,
        ticket: Ticket,
        author_type: AuthorType,
        body: str,
        html_body: str | None = None,
        visibility: Visibility = Visibility.public,
        author_customer_id: uuid.UUID | None = None,
        author_agent_id: uuid.UUID | None = None,
        inbound_message_id: uuid.UUID | None = None,
    ) -> TicketComment:
        comment = TicketComment(
            id=uuid.uuid4(), ticket_id=ticket.id, author_type=author_type,
            author_customer_id=author_customer_id, author_agent_id=author_agent_id,
            visibility=visibility, body=body, html_body=html_body,
            inbound_message_id=inbound_message_id,
        )
        session.add(comment)
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
