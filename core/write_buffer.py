"""Rows a batch writes in one statement per table at its end, instead of one ORM object each.

Audit entries and outbox events are written by every change and read by nothing in the
transaction that writes them (the relay and the audit pages read them after commit), so where
a caller collects them (mail ingest: a batch of tickets), `audit_service.record` and
`events.emit` hand their rows here rather than to the session's unit of work. The collector
writes them (`core.ingest.buffered_rows.write_rows`); where nobody collects, they go to the
session as before.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

_KEY = "helpdesk.write_buffer"


@dataclass
class WriteBuffer:
    audits: list[Any] = field(default_factory=list)  # TicketAuditLog, not added to the session
    events: list[Any] = field(default_factory=list)  # OutboxEvent, likewise


def collecting(session: AsyncSession) -> WriteBuffer | None:
    """The buffer the session's current batch collects into, if any."""
    return session.info.get(_KEY)


def start_collecting(session: AsyncSession) -> WriteBuffer:
    buffer = session.info[_KEY] = WriteBuffer()
    return buffer


def stop_collecting(session: AsyncSession) -> WriteBuffer | None:
    return session.info.pop(_KEY, None)
