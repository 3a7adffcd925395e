from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, LargeBinary, String, Text, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.enums import InboundStatus
from core.tickets.models import Ticket, TicketComment
from core.models_base import Base, pg_enum, uuid_pk


class InboundMessage(Base):
    """One accepted SMTP transaction (or API/mbox submission), raw bytes and fate."""

    __tablename__ = "inbound_messages"
    __table_args__ = (
        # the ingest runner's queue: only pending rows, oldest first
        Index(
            "ix_inbound_messages_pending",
            "received_at",
            postgresql_where=text("status = 'pending'"),
        ),
        Index("ix_inbound_messages_status_received_at", "status", "received_at", "id"),
        Index("ix_inbound_messages_dedup", "message_id", "sha256"),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    received_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()"), nullable=False
    )
    source: Mapped[str] = mapped_column(String(16), default="smtp")  # smtp, api, mbox
    peer: Mapped[str | None] = mapped_column(String(255))
    helo: Mapped[str | None] = mapped_column(String(255))
    mail_from: Mapped[str] = mapped_column(Text, default="")
    rcpt_tos: Mapped[list[str]] = mapped_column(ARRAY(Text))
    raw: Mapped[bytes] = mapped_column(LargeBinary)
    size: Mapped[int] = mapped_column(Integer)
    sha256: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[str | None] = mapped_column(Text)
    status: Mapped[InboundStatus] = mapped_column(
        pg_enum(InboundStatus, "inbound_status"),
        default=InboundStatus.pending,
    )
    reason: Mapped[str | None] = mapped_column(Text)
    matched_rule: Mapped[str | None] = mapped_column(String(32))
    mail_kind: Mapped[str | None] = mapped_column(String(16))  # human, auto_reply, bounce, bulk
    ticket_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("tickets.id"), index=True)
    comment_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("ticket_comments.id"))
    duplicate_of_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("inbound_messages.id"))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # after a failure of ours, the runner leaves the row alone until then (backoff)
    retry_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # the sender's authentication verdict, e.g. "dmarc=pass (p=reject) spf=pass dkim=pass via check"
    auth_verdict: Mapped[str | None] = mapped_column(Text)

    # declared so one flush writes the ticket and comment before the row that points at them
    ticket: Mapped[Ticket | None] = relationship(lazy="raise", foreign_keys=[ticket_id])
    comment: Mapped[TicketComment | None] = relationship(lazy="raise", foreign_keys=[comment_id])


class InboundStart(Base):
    """How often the runner began work on a pending message, committed before the work.

    Written outside the claiming transaction (and with no foreign key, whose check would wait
    on the claim's row lock): a message that kills the process leaves a count behind, so it is
    quarantined after `ingest_max_attempts` crashes instead of killing every restart.
    """

    __tablename__ = "inbound_starts"

    inbound_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    starts: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
