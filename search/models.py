"""The search tables of the PostgreSQL backend, and the indexer's queue (used by every backend).

`ticket_search` holds one document per live ticket, built by the indexer from the database:
weighted text (subject A; description and comments B; requester, tags C) and copies of the
fields that queries filter and facet on, so that a query reads one table. The documents live out
of the row (migration 0012: toast_tuple_target), so the rows a query visits for its count and
facets stay small; snippets are cut from the tickets' own text. `search_queue` is the indexer's to-do list: tickets whose document must be
rebuilt, one row per ticket however many events named it.
"""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy import DateTime, Index, Integer, SmallInteger, String, Text, text
from sqlalchemy.dialects.postgresql import ARRAY, TSVECTOR
from sqlalchemy.orm import Mapped, mapped_column

from core.models_base import Base


class TicketSearch(Base):
    __tablename__ = "ticket_search"
    __table_args__ = (
        Index("ix_ticket_search_document", "document", postgresql_using="gin"),
        Index("ix_ticket_search_updated_at", "updated_at", "ticket_id"),
        # qualifiers alone walk these (newest first, or the few rows of one person)
        # covering: qualifiers on status are counted and faceted from the index alone
        Index("ix_ticket_search_status_updated_at", "status", "updated_at",
              postgresql_include=["priority", "channel", "group_id"]),
        Index("ix_ticket_search_requester_id", "requester_id"),
        Index("ix_ticket_search_assignee_id", "assignee_id"),
        Index("ix_ticket_search_group_id", "group_id"),
        Index("ix_ticket_search_organization_id", "organization_id"),
        Index("ix_ticket_search_tags", "tags", postgresql_using="gin"),
    )

    ticket_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    title: Mapped[str] = mapped_column(TSVECTOR)  # the subject alone: subject matches rank first
    document: Mapped[str] = mapped_column(TSVECTOR)
    subject: Mapped[str] = mapped_column(Text)
    number: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    priority: Mapped[int] = mapped_column(SmallInteger)  # 0 low .. 3 urgent: comparisons
    type: Mapped[str | None] = mapped_column(String(16))
    channel: Mapped[str] = mapped_column(String(16))
    group_id: Mapped[uuid.UUID | None] = mapped_column()
    assignee_id: Mapped[uuid.UUID | None] = mapped_column()
    requester_id: Mapped[uuid.UUID] = mapped_column()
    organization_id: Mapped[uuid.UUID | None] = mapped_column()
    tags: Mapped[list[str]] = mapped_column(ARRAY(Text))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    solved_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    indexed_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("clock_timestamp()")
    )


class SearchTerm(Base):
    """Every word of four letters or more in the documents: where a typo finds its word."""

    __tablename__ = "search_terms"

    word: Mapped[str] = mapped_column(Text, primary_key=True)


class SearchQueue(Base):
    __tablename__ = "search_queue"
    __table_args__ = (Index("ix_search_queue_event_at", "event_at"),)

    ticket_id: Mapped[uuid.UUID] = mapped_column(primary_key=True)
    # bumped by every enqueue: a row is removed only if nothing queued it again meanwhile
    queued_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    # the oldest change still waiting to be searchable: the indexer's lag
    event_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    not_before: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    last_error: Mapped[str | None] = mapped_column(Text)
