"""The transactional outbox: events are rows written in the same transaction as the change.

Nothing leaves a transaction except through here; the relay publishes rows after commit.
Every topic has one pydantic model (below): `build` makes an event, `emit` writes it, and
consumers read a payload back with `parse_event` (None for a topic they do not know).
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
from sqlalchemy import DateTime, Index, Integer, String, Text, UniqueConstraint, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from core.enums import AuthorType, DeliveryStatus, TicketStatus, Visibility
from core.models_base import Base, created_at, pg_enum, uuid_pk
from core.tickets.schemas import TicketOut
from core.write_buffer import collecting

log = logging.getLogger(__name__)

TOPIC_CREATED = "notifications.ticket.created"
TOPIC_ASSIGNED = "notifications.ticket.assigned"
TOPIC_STATUS_CHANGED = "notifications.ticket.status_changed"
TOPIC_COMMENTED = "notifications.ticket.commented"
TOPIC_SLA_WARNING = "notifications.ticket.sla_warning"
# changes no notification announces, for consumers that follow every change (the search indexer)
TOPIC_UPDATED = "notifications.ticket.updated"
TOPIC_DELETED = "notifications.ticket.deleted"
TOPIC_NOTIFICATION = "notifications.ticket.notification"
TOPIC_SLA_BREACHED = "notifications.ticket.sla_breached"
TOPIC_SATISFACTION_SURVEY = "notifications.ticket.satisfaction_survey"
TOPIC_SATISFACTION_RATED = "notifications.ticket.satisfaction_rated"
# a customer's name or address changed: the documents of their tickets carry them
TOPIC_CUSTOMER_UPDATED = "notifications.customer.updated"
# every topic the relay may publish to (it creates them when missing); consumers ignore the
# types they do not handle
TOPICS = (
    TOPIC_CREATED, TOPIC_ASSIGNED, TOPIC_STATUS_CHANGED, TOPIC_COMMENTED, TOPIC_SLA_WARNING,
    TOPIC_UPDATED, TOPIC_DELETED, TOPIC_NOTIFICATION, TOPIC_SLA_BREACHED, TOPIC_SATISFACTION_SURVEY,
    TOPIC_SATISFACTION_RATED, TOPIC_CUSTOMER_UPDATED,
)
SEARCH_TOPICS = TOPICS
# the built-in mails of these topics are sent when a notification trigger asks for them
# (core/triggers/defaults.py seeds those triggers); an event of one of them written by the change
# path says so (`mailed_by_triggers`), and the mailer sends nothing for the event itself
TRIGGERED_MAIL_TOPICS = frozenset({TOPIC_CREATED, TOPIC_ASSIGNED, TOPIC_STATUS_CHANGED, TOPIC_COMMENTED})
# session.info key: this transaction's changes go through the change path, which runs triggers
TRIGGERS_DECIDE_MAIL = "helpdesk.triggers_decide_mail"
CUSTOMER_UPDATED = "customer_updated"  # its events' `type`

class _Event(BaseModel):
    """What every event carries; unknown keys are ignored (older or newer producers)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    event_id: uuid.UUID = Field(default_factory=uuid.uuid4)
    occurred_at: datetime = Field(default_factory=lambda: datetime.now().astimezone())
    ticket: TicketOut
    via: str | None = None
    # True: triggers decide this event's built-in mail (a `TriggerNotification` with its
    # `template`); events without it (older ones) are mailed as they always were
    mailed_by_triggers: bool = False


class CommentFacts(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    id: uuid.UUID | None = None
    visibility: Visibility
    author_type: AuthorType
    author_id: uuid.UUID | None = None
    body: str = ""
    mail_kind: str | None = None  # for mail: person, auto_reply, bulk, bounce


class TicketCreated(_Event):
    type: Literal["created"] = "created"
    mail_kind: str | None = None  # lets the mailer leave automatic mail unanswered
    follow_up_of_id: uuid.UUID | None = None
    sending_host: str | None = None  # the SMTP client: acknowledgements are bounded per host
    verified: bool = True  # the sender's domain vouched for them: else a fixed acknowledgement


class TicketAssigned(_Event):
    type: Literal["assigned"] = "assigned"
    assignee_id: uuid.UUID
    previous_assignee_id: uuid.UUID | None = None
    actor_id: uuid.UUID | None = None


class TicketStatusChanged(_Event):
    type: Literal["status_changed"] = "status_changed"
    previous_status: TicketStatus


class TicketCommented(_Event):
    type: Literal["commented"] = "commented"
    comment: CommentFacts


class SlaWarning(_Event):
    type: Literal["sla_warning"] = "sla_warning"
    metric: str
    breach_at: datetime
    breached: bool = False


class SlaBreached(_Event):
    type: Literal["sla_breached"] = "sla_breached"
    metric: str
    target_at: datetime
    breached_at: datetime


class SatisfactionSurvey(_Event):
    """Time to ask the requester of a solved ticket how it went."""

    type: Literal["satisfaction_survey"] = "satisfaction_survey"


class SatisfactionRated(_Event):
    type: Literal["satisfaction_rated"] = "satisfaction_rated"
    score: Literal["good", "bad"]
    comment: str | None = None


class TicketUpdated(_Event):
    """Fields changed that no other event announces (subject, priority, tags, ...)."""

    type: Literal["updated"] = "updated"
    changes: dict[str, Any]


class TicketDeleted(_Event):
    type: Literal["deleted"] = "deleted"


class TriggerNotification(_Event):
    """A trigger's `notify_*` action: its subject and body are templates, rendered by the mailer.

    With `template` it is one of the built-in mails (acknowledgement, assignment, comment,
    solved), sent by the built-in rules and carrying the facts they need; `subject`/`body`, when
    set, replace the built-in subject/text. `via` is then the change's (email, api, ...)."""

    type: Literal["notification"] = "notification"
    trigger_id: uuid.UUID
    trigger_title: str
    audience: Literal["requester", "assignee", "group"]
    subject: str | None = None
    body: str | None = None
    comment: CommentFacts | None = None
    template: str | None = None
    # the facts of the change the built-in mails need
    mail_kind: str | None = None
    sending_host: str | None = None
    verified: bool = True
    actor_id: uuid.UUID | None = None
    previous_status: TicketStatus | None = None


Event = Annotated[
    Union[
        TicketCreated, TicketAssigned, TicketStatusChanged, TicketCommented, SlaWarning,
        TicketUpdated, TicketDeleted, TriggerNotification, SlaBreached, SatisfactionSurvey,
        SatisfactionRated,
    ],
    Field(discriminator="type"),
]
MODELS: dict[str, type[_Event]] = {
    TOPIC_CREATED: TicketCreated, TOPIC_ASSIGNED: TicketAssigned, TOPIC_STATUS_CHANGED: TicketStatusChanged,
    TOPIC_COMMENTED: TicketCommented, TOPIC_SLA_WARNING: SlaWarning, TOPIC_UPDATED: TicketUpdated,
    TOPIC_DELETED: TicketDeleted, TOPIC_NOTIFICATION: TriggerNotification, TOPIC_SLA_BREACHED: SlaBreached,
    TOPIC_SATISFACTION_SURVEY: SatisfactionSurvey, TOPIC_SATISFACTION_RATED: SatisfactionRated,
}
_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


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


def build(topic: str, ticket: TicketOut | dict[str, Any], **fields: Any) -> _Event:
    """The one place events are made: validated against the topic's model."""
    return MODELS[topic].model_validate({"ticket": ticket, **fields})


def event_payload(
    topic: str, ticket: TicketOut | dict[str, Any], *, ticket_json: dict[str, Any] | None = None, **fields: Any,
) -> tuple[uuid.UUID, dict[str, Any]]:
    """An event's id and its message, as consumers receive it. `ticket_json`: the ticket as
    another event of the same change already carries it (not serialized a second time)."""
    event = build(topic, ticket, **fields)
    if ticket_json is None:
        return event.event_id, event.model_dump(mode="json")
    return event.event_id, {**event.model_dump(mode="json", exclude={"ticket"}), "ticket": ticket_json}


def parse_event(payload: dict[str, Any]) -> Event | None:
    """A consumed payload as its model; None (logged) for an unknown type or a malformed event."""
    try:
        return _ADAPTER.validate_python(payload)
    except ValidationError as exc:
        kind = payload.get("type") if isinstance(payload, dict) else None
        if kind in {m.model_fields["type"].default for m in MODELS.values()}:
            log.error("malformed %s event %s ignored: %s", kind, payload.get("event_id"), exc)
        return None


def emit(session: AsyncSession, *, topic: str, ticket: TicketOut | dict[str, Any], **fields: Any) -> OutboxEvent:
    """Add an event to the current transaction; it is published only after commit."""
    if topic in TRIGGERED_MAIL_TOPICS and session.info.get(TRIGGERS_DECIDE_MAIL) and not (
        topic == TOPIC_COMMENTED and fields.get("via") in ("trigger", "automation")
    ):  # a trigger's (automation's) own comment is announced as it always was: it is the message
        fields.setdefault("mailed_by_triggers", True)
    event_id, payload = event_payload(topic, ticket, **fields)
    event = OutboxEvent(id=event_id, topic=topic, key=payload["ticket"]["id"], payload=payload)
    if (buffer := collecting(session)) is not None:
        buffer.events.append(event)
    else:
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
