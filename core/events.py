"""The transactional outbox: events are rows written in the same transaction as the change.

Nothing leaves a transaction except through here; the relay publishes rows after commit.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from core.enums import DeliveryStatus
from core.models_base import Base, created_at, pg_enum, uuid_pk

TOPIC_CREATED = "notifications.ticket.created"
TOPIC_ASSIGNED = "notifications.ticket.assigned"
TOPIC_STATUS_CHANGED = "notifications.ticket.status_changed"
TOPIC_COMMENTED = "notifications.ticket.commented"
TOPIC_SLA_WARNING = "notifications.ticket.sla_warning"
# changes no notification announces, for consumers that follow every change (the search indexer)
TOPIC_UPDATED = "notifications.ticket.updated"
TOPIC_DELETED = "notifications.ticket.deleted"
# a customer's name or address changed: the documents of their tickets carry them
TOPIC_CUSTOMER_UPDATED = "notifications.customer.updated"
# every topic the relay may publish to (it creates them when missing); consumers ignore the
# types they do not handle
TOPICS = (
    TOPIC_CREATED, TOPIC_ASSIGNED, TOPIC_STATUS_CHANGED, TOPIC_COMMENTED, TOPIC_SLA_WARNING,
    TOPIC_UPDATED, TOPIC_DELETED, TOPIC_CUSTOMER_UPDATED,
)
SEARCH_TOPICS = TOPICS
CUSTOMER_UPDATED = "customer_updated"  # its events' `type`


class OutboxEvent(Base):
    __tablename__ = "outbox_events"
    __table_args__ = (
        Index(
            "ix_outbox_events_unpublished",
            "created_at",
            postgresql_where=text("published_at IS NULL"),
        ),
    )

    id: Mapped[uuid.UUID] = uuid_pk()  # the event_id consumers deduplicate by
    topic: Mapped[str] = mapped_column(String(128))
    key: Mapped[str] = mapped_column(String(64))  # ticket id: a ticket's events stay in order
    payload: Mapped[dict[str, Any]] = mapped_column(JSONB)
    created_at: Mapped[datetime] = created_at()
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)


class OutboundDelivery(Base):
    """One email for one (event, recipient): the mailer's idempotency record."""

    __tablename__ = "outbound_deliveries"
    __table_args__ = (
        UniqueConstraint("event_id", "recipient", name="uq_outbound_deliveries_event_recipient"),
        # the hourly cap on automatic mail per address, and the retry sweep over pending rows
        Index("ix_outbound_deliveries_recipient_created_at", "recipient", "created_at"),
        Index("ix_outbound_deliveries_pending", "created_at", postgresql_where=text("status = 'pending'")),
    )

    id: Mapped[uuid.UUID] = uuid_pk()
    event_id: Mapped[uuid.UUID] = mapped_column(index=True)
    ticket_id: Mapped[uuid.UUID | None] = mapped_column(index=True)
    recipient: Mapped[str] = mapped_column(String(320))
    template: Mapped[str] = mapped_column(String(64))
    message_id: Mapped[str] = mapped_column(Text)
    status: Mapped[DeliveryStatus] = mapped_column(
        pg_enum(DeliveryStatus, "delivery_status"), default=DeliveryStatus.pending
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = created_at()
    sent_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


def event_payload(topic: str, ticket: dict[str, Any], **fields: Any) -> tuple[uuid.UUID, dict[str, Any]]:
    """An event's id and its message, as consumers receive it."""
    event_id = uuid.uuid4()
    return event_id, {
        "event_id": str(event_id),
        "type": topic.rsplit(".", 1)[-1],
        "occurred_at": datetime.now().astimezone().isoformat(),
        "ticket": ticket,
        **fields,
    }


def emit(session: AsyncSession, *, topic: str, ticket: dict[str, Any], **fields: Any) -> OutboxEvent:
    """Add an event to the current transaction; it is published only after commit."""
    event_id, payload = event_payload(topic, ticket, **fields)
    event = OutboxEvent(id=event_id, topic=topic, key=str(ticket["id"]), payload=payload)
    session.add(event)
    return event


def emit_customer_updated(
    session: AsyncSession, *, customer_id: uuid.UUID, ticket_ids: Iterable[uuid.UUID] = ()
) -> OutboxEvent:
    """Keyed by the customer: their events stay in order (no ticket snapshot: there is none).
    `ticket_ids`: tickets besides their own whose text changed with them (an erasure)."""
    event_id = uuid.uuid4()
    payload = {
        "event_id": str(event_id), "type": CUSTOMER_UPDATED,
        "occurred_at": datetime.now().astimezone().isoformat(), "customer_id": str(customer_id),
        "ticket_ids": sorted(str(t) for t in ticket_ids),
    }
    event = OutboxEvent(id=event_id, topic=TOPIC_CUSTOMER_UPDATED, key=str(customer_id), payload=payload)
    session.add(event)
    return event
