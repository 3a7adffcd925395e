"""Ticket, comment and attachment shapes for HTTP responses and event snapshots."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict

from core.enums import AuthorType, Channel, TicketPriority, TicketStatus, TicketType, Visibility


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
