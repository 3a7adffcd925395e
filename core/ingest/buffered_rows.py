"""A batch's collected audit entries and outbox events (core/write_buffer.py), written with one
statement per table on the session's connection, in the order they were recorded (each row's
`created_at` is its insert's clock time, which orders a ticket's audit log)."""

from __future__ import annotations

import json

from sqlalchemy.ext.asyncio import AsyncSession

from core.audit.models import TicketAuditLog
from core.db import driver_of
from core.enums import AuthorType
from core.events import OutboxEvent
from core.write_buffer import WriteBuffer

_AUDITS = (
    f"INSERT INTO {TicketAuditLog.__tablename__} (id, ticket_id, actor_type, actor_id, action, changes, via) "
    "SELECT id, ticket_id, actor_type, actor_id, action, changes, via FROM unnest("
    "$1::uuid[], $2::uuid[], $3::author_type[], $4::uuid[], $5::text[], $6::jsonb[], $7::text[]"
    ") WITH ORDINALITY AS r(id, ticket_id, actor_type, actor_id, action, changes, via, n) ORDER BY n"
)
_EVENTS = (
    f"INSERT INTO {OutboxEvent.__tablename__} (id, topic, key, payload) "
    "SELECT id, topic, key, payload FROM unnest($1::uuid[], $2::text[], $3::text[], $4::jsonb[])"
    " WITH ORDINALITY AS r(id, topic, key, payload, n) ORDER BY n"
)


async def write_rows(session: AsyncSession, rows: WriteBuffer) -> None:
    """After the session's flush (the audit entries point at its tickets)."""
    if not rows.audits and not rows.events:
        return
    async with driver_of(session) as driver:
        if rows.audits:
            audits = rows.audits
            await driver.execute(
                _AUDITS, [a.id for a in audits], [a.ticket_id for a in audits],
                [AuthorType(a.actor_type).value for a in audits], [a.actor_id for a in audits], [a.action for a in audits],
                [json.dumps(a.changes or {}) for a in audits], [a.via for a in audits],
            )
        if rows.events:
            events = rows.events
            await driver.execute(
                _EVENTS, [e.id for e in events], [e.topic for e in events], [e.key for e in events],
                [json.dumps(e.payload) for e in events],
            )
