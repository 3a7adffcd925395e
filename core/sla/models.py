from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Index, Integer, String, Text, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import Mapped, mapped_column

from core.models_base import Base, created_at, updated_at, uuid_pk


class SlaPolicy(Base):
    __tablename__ = "sla_policies"

    id: Mapped[uuid.UUID] = uuid_pk()
    title: Mapped[str] = mapped_column(String(255))
    description: Mapped[str | None] = mapped_column(Text)
    position: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # conditions a ticket must meet for the policy to apply, e.g. {"priority": ["urgent"]}
    filter: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    # targets in minutes per priority, e.g. {"first_reply_time": {"urgent": 60}}
    metrics: Mapped[dict[str, Any]] = mapped_column(JSONB, default=dict, server_default="{}")
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    # optional business hours ({timezone, weekly}): targets count only open minutes
    business_hours: Mapped[dict[str, Any] | None] = mapped_column(JSONB)
    created_at: Mapped[datetime] = created_at()
    updated_at: Mapped[datetime] = updated_at()


class TicketSlaTarget(Base):
    """One target of one ticket: due at `target_at`, which is `minutes` (+ the open minutes it
    spent paused) after `started_at`, counted in the policy's business hours."""

    __tablename__ = "ticket_sla_targets"
    __table_args__ = (
        Index("ix_ticket_sla_targets_ticket_id", "ticket_id"),
        Index("ix_ticket_sla_targets_started_at", "started_at"),
        # the breach job: open, running, not yet breached
        Index(
            "ix_ticket_sla_targets_due", "target_at",
            postgresql_where=text("fulfilled_at IS NULL AND breached_at IS NULL AND paused_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    ticket_id: Mapped[uuid.UUID] = mapped_column(ForeignKey("tickets.id", ondelete="CASCADE"))
    policy_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("sla_policies.id", ondelete="SET NULL"))
    metric: Mapped[str] = mapped_column(String(32))
    minutes: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    target_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    paused_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    paused_minutes: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    fulfilled_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    breached_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    # the warning before `target_at` went out (one per target)
    warned_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    created_at: Mapped[datetime] = created_at()
