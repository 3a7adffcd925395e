from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column, relationship

from core.enums import AuthorType
from core.tickets.models import Ticket
from core.models_base import Base, created_at_in_order, pg_enum, uuid_pk


class TicketAuditLog(Base):
    __tablename__ = "ticket_audit_logs"
    __table_args__ = (Index("ix_ticket_audit_logs_ticket_id_created_at", "ticket_id", "created_at"),)

    id: Mapped[uuid.UUID] = uuid_pk()
    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    actor_type: Mapped[AuthorType] = mapped_column(pg_enum(AuthorType, "author_type"))
    actor_id: Mapped[uuid.UUID | None]
    action: Mapped[str] = mapped_column(String(64))
    # {"field": {"from": old, "to": new}, ...}
    changes: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    via: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = created_at_in_order()

    # declared so one flush inserts the ticket first (never loaded)
    ticket: Mapped[Ticket] = relationship(lazy="raise")
