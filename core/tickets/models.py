from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    Sequence,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.enums import (
    AuthorType,
    Channel,
    MessageDirection,
    TicketPriority,
    TicketStatus,
    TicketType,
    Visibility,
)
from core.models_base import (
    Base,
    created_at,
    created_at_in_order,
    pg_enum,
    updated_at,
    uuid_pk,
)

ticket_number_seq = Sequence("ticket_number_seq", metadata=Base.metadata)


class Ticket(Base):
    __tablename__ = "tickets"
    __table_args__ = (
        # keyset pagination and the common filters
        Index("ix_tickets_created_at_id", "created_at", "id"),
        Index("ix_tickets_updated_at_id", "updated_at", "id"),
        Index("ix_tickets_status_created_at_id", "status", "created_at", "id"),
        Index("ix_tickets_tags", "tags", postgresql_using="gin"),
        # the scheduler's jobs: solved tickets waiting to close; unanswered ones under an SLA
        Index("ix_tickets_solved_at", "solved_at", postgresql_where=text("status = 'solved'")),
        # GET /tickets/statistics: tickets solved per day in a window (an index-only scan)
        Index(
            "ix_tickets_solved_day", "solved_at", postgresql_include=["group_id"],
            postgresql_where=text("deleted_at IS NULL AND solved_at IS NOT NULL"),
        ),
        # the survey job: solved tickets not yet surveyed
        Index(
            "ix_tickets_survey_due", "solved_at",
            postgresql_where=text("satisfaction_sent_at IS NULL AND solved_at IS NOT NULL"),
        ),
        Index(
            "ix_tickets_sla_unanswered", "sla_breach_at",
            postgresql_where=text(
                "first_response_at IS NULL AND sla_warned_at IS NULL AND deleted_at IS NULL"
                " AND status IN ('new', 'open')"
            ),
        ),
    )
    # number, created_at, updated_at come back from the INSERT itself (RETURNING)
    __mapper_args__ = {"eager_defaults": True}

    id: Mapped[uuid.UUID] = uuid_pk()
    number: Mapped[int] = mapped_column(
        BigInteger, ticket_number_seq, server_default=ticket_number_seq.next_value(), unique=True
    )
    external_id: Mapped[str | None] = mapped_column(String(255), index=True, unique=True)
    subject: Mapped[str] = mapped_column(Text, default="")
    description: Mapped[str] = mapped_column(Text, default="")
    status: Mapped[TicketStatus] = mapped_column(
        pg_enum(TicketStatus, "ticket_status"), default=TicketStatus.new
    )
    priority: Mapped[TicketPriority] = mapped_column(
        pg_enum(TicketPriority, "ticket_priority"), default=TicketPriority.normal
    )
    type: Mapped[TicketType | None] = mapped_column(pg_enum(TicketType, "ticket_type"))
    channel: Mapped[Channel] = mapped_column(pg_enum(Channel, "ticket_channel"))
    requester_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("customers.id"), index=True)
    assignee_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("agents.id"), index=True)
    group_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("groups.id"), index=True)
    organization_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("organizations.id"), index=True
    )
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text), default=list, server_default="{}")
    custom_fields: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    sla_breach_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    sla_warned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    first_response_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    solved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    merged_into_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tickets.id"))
    follow_up_of_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tickets.id"))
    deleted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()
    # the satisfaction survey: when it was sent, and the requester's answer (good | bad)
    satisfaction_sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    satisfaction_score: Mapped[str | None] = mapped_column(String(8))
    satisfaction_comment: Mapped[str | None] = mapped_column(Text)
    satisfaction_rated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))

    @property
    def satisfaction(self) -> dict[str, Any] | None:
        if self.satisfaction_score is None:
            return None
        return {
            "score": self.satisfaction_score, "comment": self.satisfaction_comment,
            "rated_at": self.satisfaction_rated_at,
        }


class TicketComment(Base):
    __tablename__ = "ticket_comments"
    __table_args__ = (Index("ix_ticket_comments_ticket_id_created_at", "ticket_id", "created_at"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    author_type: Mapped[AuthorType] = mapped_column(pg_enum(AuthorType, "author_type"))
    author_customer_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("customers.id"))
    author_agent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("agents.id"))
    visibility: Mapped[Visibility] = mapped_column(
        pg_enum(Visibility, "comment_visibility"), default=Visibility.public
    )
    body: Mapped[str] = mapped_column(Text, default="")
    html_body: Mapped[str | None] = mapped_column(Text)
    inbound_message_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("inbound_messages.id", use_alter=True)
    )
    # for mail: which threading rule put it here, and whether it was automatic mail
    matched_rule: Mapped[str | None] = mapped_column(String(32))
    mail_kind: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime] = created_at_in_order()

    # declared so one flush inserts rows in dependency order (never loaded: lazy="raise")
    ticket: Mapped[Ticket] = relationship(lazy="raise")


class TicketAttachment(Base):
    __tablename__ = "ticket_attachments"

    id: Mapped[uuid.UUID] = uuid_pk()
    ticket_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("tickets.id", ondelete="CASCADE"), index=True
    )
    comment_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("ticket_comments.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(255))
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    content_id: Mapped[str | None] = mapped_column(String(998))
    inline: Mapped[bool] = mapped_column(default=False, server_default="false")
    created_at: Mapped[datetime] = created_at()

    comment: Mapped[TicketComment | None] = relationship(lazy="raise")


ticket_followers = Table(
    "ticket_followers",
    Base.metadata,
    Column("ticket_id", ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True),
    Column("customer_id", ForeignKey("customers.id", ondelete="CASCADE"), primary_key=True),
    Column("created_at", DateTime(timezone=True), server_default=text("now()"), nullable=False),
)


class Tag(Base):
    """The catalogue of tag names; tickets carry theirs in `tickets.tags`."""

    __tablename__ = "tags"

    name: Mapped[str] = mapped_column(String(80), primary_key=True)
    usage_count: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    created_at: Mapped[datetime] = created_at()


class MessageId(Base):
    """Every Message-ID a ticket sent or received: replies are threaded by these."""

    __tablename__ = "message_ids"
    __table_args__ = (UniqueConstraint("message_id", "ticket_id", name="uq_message_ids_message_ticket"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    message_id: Mapped[str] = mapped_column(Text, index=True)
    # the mailer reads a ticket's thread for In-Reply-To/References
    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"), index=True)
    comment_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("ticket_comments.id", ondelete="SET NULL")
    )
    direction: Mapped[MessageDirection] = mapped_column(
        pg_enum(MessageDirection, "message_direction")
    )
    created_at: Mapped[datetime] = created_at()

    ticket: Mapped[Ticket] = relationship(lazy="raise")
    comment: Mapped[TicketComment | None] = relationship(lazy="raise")
