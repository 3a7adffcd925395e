"""Ticket, comment and attachment shapes for HTTP responses and event snapshots."""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from core.enums import (
    AuthorType,
    Channel,
    TicketPriority,
    TicketStatus,
    TicketType,
    Visibility,
)
from core.errors import FieldValueError
from core.schemas import EmailAddress


class SatisfactionOut(BaseModel):
    score: Literal["good", "bad"]
    comment: str | None
    rated_at: datetime


class TicketOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    number: int
    external_id: str | None
    subject: str
    description: str
    status: TicketStatus
    priority: TicketPriority
    type: TicketType | None
    channel: Channel
    requester_id: uuid.UUID
    assignee_id: uuid.UUID | None
    group_id: uuid.UUID | None
    organization_id: uuid.UUID | None
    tags: list[str]
    custom_fields: dict[str, Any]
    sla_breach_at: datetime | None
    first_response_at: datetime | None
    solved_at: datetime | None
    satisfaction: SatisfactionOut | None = None
    created_at: datetime
    updated_at: datetime


class AttachmentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    filename: str
    content_type: str
    size: int
    sha256: str
    inline: bool
    content_id: str | None
    url: str


class CommentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    ticket_id: uuid.UUID
    author_type: AuthorType
    author_customer_id: uuid.UUID | None
    author_agent_id: uuid.UUID | None
    visibility: Visibility
    body: str
    html_body: str | None
    inbound_message_id: uuid.UUID | None
    created_at: datetime
    attachments: list[AttachmentOut]


class TicketList(BaseModel):
    tickets: list[TicketOut]
    next_cursor: str | None


class CommentList(BaseModel):
    comments: list[CommentOut]
    next_cursor: str | None


# ---- input: what agents and integrations may send (unknown fields are refused) ----

MAX_TAGS = 50


def _tags(value: list[str]) -> list[str]:
    cleaned: list[str] = []
    for tag in value:
        tag = tag.strip().lower()
        if not tag or len(tag) > 80 or any(ch.isspace() or not ch.isprintable() for ch in tag):
            raise ValueError(f"not a valid tag: {tag!r} (no spaces, 1-80 characters)")
        if tag not in cleaned:
            cleaned.append(tag)
    if len(cleaned) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags")
    return cleaned


def _custom_fields(value: dict[str, Any]) -> dict[str, Any]:
    if len(value) > 100 or len(json.dumps(value, default=str)) > 16_384:
        raise ValueError("at most 100 custom fields and 16 KiB in all")
    return value


Tags = Annotated[list[str], AfterValidator(_tags)]
CustomFields = Annotated[dict[str, Any], AfterValidator(_custom_fields)]
Subject = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=998)]
Body = Annotated[str, StringConstraints(min_length=1, max_length=65_536)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CommentIn(Strict):
    model_config = ConfigDict(json_schema_extra={"examples": [
        {"body": "We have sent a technician.", "visibility": "public"},
    ]})

    body: Body
    visibility: Visibility = Visibility.public


class RequesterIn(Strict):
    email: EmailAddress
    name: Annotated[str, StringConstraints(max_length=255)] = ""


API_CHANNELS = (Channel.web, Channel.api, Channel.chat, Channel.phone)


class TicketCreate(Strict):
    """The first comment is `description` (a public comment) or `comment` (with its visibility)."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"subject": "Printer on fire", "description": "It started this morning.",
         "requester": {"email": "jane@customer.test", "name": "Jane Doe"}, "priority": "high",
         "type": "incident", "channel": "phone", "tags": ["hardware"], "external_id": "crm-4711"},
        {"subject": "Refund", "comment": {"body": "Customer called about order 1234", "visibility": "internal"},
         "requester_id": "5f0c6a1e-8d4b-4c2e-9a51-0b7f3c2d1e4f"},
    ]})

    subject: Subject
    description: Body | None = Field(default=None, description="the first comment's text, public")
    comment: CommentIn | None = None
    channel: Channel = Field(
        default=Channel.api, description="where the request came from: web, api, chat or phone (email only from mail)",
    )
    requester_id: uuid.UUID | None = None
    requester: RequesterIn | None = None
    status: TicketStatus = TicketStatus.new
    priority: TicketPriority = TicketPriority.normal
    type: TicketType | None = None
    assignee_id: uuid.UUID | None = None
    group_id: uuid.UUID | None = None
    tags: Tags = Field(default_factory=list)
    custom_fields: CustomFields = Field(default_factory=dict)
    external_id: Annotated[str, StringConstraints(max_length=255)] | None = None

    @field_validator("channel")
    @classmethod
    def _not_email(cls, value: Channel) -> Channel:
        if value not in API_CHANNELS:
            raise ValueError("email tickets come only from mail; use web, api, chat or phone")
        return value

    @model_validator(mode="after")
    def _one_requester(self) -> TicketCreate:
        if (self.requester_id is None) == (self.requester is None):
            raise FieldValueError("requester_id", "give exactly one of requester_id and requester")
        if (self.description is None) == (self.comment is None):
            raise FieldValueError("description", "give the first comment as description or as comment (exactly one)")
        if self.comment is None:
            self.comment = CommentIn(body=self.description)  # type: ignore[arg-type]
        if self.status is TicketStatus.closed:
            raise FieldValueError("status", "a ticket cannot be created closed")
        return self


class TicketUpdate(Strict):
    """Only the fields sent are changed; `null` clears assignee, group, type or external_id."""

    model_config = ConfigDict(json_schema_extra={"examples": [
        {"status": "pending", "assignee_id": "0b7f3c2d-1e4f-4c2e-9a51-5f0c6a1e8d4b",
         "comment": {"body": "Could you send a photo of the label?"}},
    ]})

    subject: Subject | None = None
    status: TicketStatus | None = None
    priority: TicketPriority | None = None
    type: TicketType | None = None
    assignee_id: uuid.UUID | None = None
    group_id: uuid.UUID | None = None
    tags: Tags | None = None
    custom_fields: CustomFields | None = None
    external_id: Annotated[str, StringConstraints(max_length=255)] | None = None
    comment: CommentIn | None = None

    @model_validator(mode="after")
    def _no_null_for_required(self) -> TicketUpdate:
        for name in ("subject", "status", "priority", "tags", "custom_fields"):
            if name in self.model_fields_set and getattr(self, name) is None:
                raise ValueError(f"{name} cannot be null")
        return self


class UpdateMany(Strict):
    ids: Annotated[list[str], Field(min_length=1, max_length=100)]
    changes: TicketUpdate


class MergeIn(Strict):
    ids: Annotated[list[str], Field(min_length=1, max_length=100)]
    target_comment: Body | None = None
    source_comment: Body | None = None


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    ticket_id: uuid.UUID
    actor_type: AuthorType
    actor_id: uuid.UUID | None
    action: str
    changes: dict[str, Any]
    via: str | None
    created_at: datetime


class AuditList(BaseModel):
    audits: list[AuditOut]
    next_cursor: str | None


class UpdateManyOut(BaseModel):
    tickets: list[TicketOut]
