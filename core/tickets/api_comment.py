"""An API comment without ORM objects: the request's hottest write, behind
`TicketChangeService.add_comment` (the edge never chooses it).

The same change as `TicketChangeService.comment` + `TicketService.add_comment` (the ticket's
`updated_at` and first response, the comment, its audit entry and its `commented` event, in
the request's one transaction), as two statements on the session's own connection: through
the ORM the flush and its bookkeeping were most of the request. The first reads and locks the
ticket with the active triggers; they are evaluated on the row. Triggers that only send mail
(the seeded notifications) fire here: the second statement writes the ticket's touch, the
comment, every audit entry and every outbox event at once. Only when another trigger fires,
or the comment answers a reply target, is the ticket loaded through the ORM (the `settle`
callback, which runs them all). The ORM path stays for comments with attachments.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core import events
from core.actor import Actor
from core.audit.models import TicketAuditLog
from core.clock import utcnow
from core.db import driver_of
from core.customers.models import Customer
from core.enums import AgentRole, AuthorType, TicketStatus, Visibility
from core.errors import Conflict, Forbidden, NotFound
from core.events import CommentFacts
from core.tickets.models import Ticket, TicketComment
from core.tickets.schemas import CommentIn, CommentOut, TicketOut
from core.tickets.views import VIEW_COLUMNS, ticket_ref, ticket_values
from core.sla.models import TicketSlaTarget
from core.triggers.conditions import Facts, matches
from core.triggers.runner import (
    ACTIVE_VERSION, LoadedTrigger, active_triggers_at, notification_audit, notification_fields,
)

# the whole write in one statement: the ticket touched, the comment, its audit entries (the
# comment's and those of notification triggers firing) and its outbox events, rows as arrays
_WRITE = (
    f"WITH touched AS (UPDATE {Ticket.__tablename__} SET updated_at = $2, "
    "first_response_at = CASE WHEN $3 THEN coalesce(first_response_at, $2) ELSE first_response_at END "
    "WHERE id = $1), "
    f"comment AS (INSERT INTO {TicketComment.__tablename__} "
    "(id, ticket_id, author_type, author_agent_id, visibility, body) "
    "VALUES ($4, $1, $5, $6, $7, $8) RETURNING created_at), "
    f"audits AS (INSERT INTO {TicketAuditLog.__tablename__} (id, ticket_id, actor_type, actor_id, action, changes, via) "
    "SELECT * FROM unnest($9::uuid[], $10::uuid[], $11::author_type[], $12::uuid[], $13::text[], $14::jsonb[], $15::text[])), "
    f"outbox AS (INSERT INTO {events.OutboxEvent.__tablename__} (id, topic, key, payload) "
    "SELECT * FROM unnest($16::uuid[], $17::text[], $18::text[], $19::jsonb[])) "
    "SELECT created_at FROM comment"
)


def check_comment(status: TicketStatus, number: int, data: CommentIn, actor: Actor) -> None:
    """What may not be commented, by whom (shared with the ORM path)."""
    if status is TicketStatus.closed:
        raise Conflict(f"ticket #{number} is closed; a reply by email opens a follow-up")
    if data.visibility is Visibility.public and actor.role is AgentRole.light_agent:
        raise Forbidden("light agents may only add internal comments", {"visibility": "must be internal"})


_VIEW_KEYS = tuple(c.key for c in VIEW_COLUMNS)


def _lookup(key_column: str) -> str:
    """The ticket as the API shows it (locked: the write that follows starts from it), the
    active triggers' version, the requester's address and whether a public agent comment
    answers a reply target, in one round trip. Plain SQL on the session's connection: the
    ORM's execution of a select of mapped columns cost more than running it."""
    return (
        f"SELECT {', '.join(f't.{key}' for key in _VIEW_KEYS)}, {ACTIVE_VERSION},"
        f" (SELECT email FROM {Customer.__tablename__} WHERE id = t.requester_id),"
        f" EXISTS (SELECT 1 FROM {TicketSlaTarget.__tablename__} s WHERE s.ticket_id = t.id"
        " AND s.fulfilled_at IS NULL AND s.metric IN ('first_reply_time', 'next_reply_time'))"
        f" FROM {Ticket.__tablename__} t WHERE t.deleted_at IS NULL AND t.{key_column} = $1 FOR UPDATE OF t"
    )


_BY_NUMBER, _BY_ID = _lookup("number"), _lookup("id")

# settles the change after the comment: (session, ticket id, facts, triggers, actor, reply target due)
Settle = Callable[[AsyncSession, uuid.UUID, Facts, list[LoadedTrigger], Actor, bool], Awaitable[None]]


def _notifications(
    fired: list[LoadedTrigger], snapshot: TicketOut, ticket_json: dict[str, Any], comment: CommentFacts,
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """The audit rows and outbox rows of notification triggers firing on this comment."""
    audits: list[tuple[Any, ...]] = []
    notes: list[tuple[Any, ...]] = []
    for trigger in fired:
        audits.append((
            uuid.uuid4(), snapshot.id, "system", None, "trigger", json.dumps(notification_audit(trigger)), "trigger",
        ))
        for action in trigger.actions:
            note_id, note = events.event_payload(
                events.TOPIC_NOTIFICATION, snapshot, ticket_json=ticket_json, **notification_fields(
                    "api", "trigger", trigger, action, comment=comment, actor_id=comment.author_id,
                ),
            )
            notes.append((note_id, events.TOPIC_NOTIFICATION, str(snapshot.id), json.dumps(note)))
    return audits, notes


async def add_fast_comment(
    session: AsyncSession, ref: str, data: CommentIn, actor: Actor, *, settle: Settle
) -> CommentOut:
    key = ticket_ref(ref)
    if key is None:
        raise NotFound("ticket not found")
    # through the session's connection: its transaction begins here, and the rest joins it, so
    # the request commits (or rolls back) all of it together
    session_connection = await session.connection()
    found = (await session_connection.exec_driver_sql(_BY_NUMBER if isinstance(key, int) else _BY_ID, (key,))).first()
    if found is None:
        raise NotFound("ticket not found")
    *view, triggers_version, requester_email, reply_due = found
    values = ticket_values(dict(zip(_VIEW_KEYS, view)))
    check_comment(TicketStatus(values["status"]), values["number"], data, actor)
    now, public = utcnow(), data.visibility is Visibility.public and actor.type is AuthorType.agent
    # the ticket as the write leaves it (the row is locked: nothing else changes it meanwhile)
    values["updated_at"] = now
    if public and values["first_response_at"] is None:
        values["first_response_at"] = now
    snapshot = TicketOut.model_validate(values)
    ticket_id, comment_id, actor_id = snapshot.id, uuid.uuid4(), actor.id
    comment = CommentFacts(
        id=comment_id, visibility=data.visibility, author_type=actor.type, author_id=actor_id, body=data.body,
    )
    triggers = await active_triggers_at(session, triggers_version)
    reply_due = reply_due and public
    event_id, payload = events.event_payload(
        events.TOPIC_COMMENTED, snapshot, via="api", comment=comment, mailed_by_triggers=True,
    )
    facts = Facts(
        event="updated", ticket=payload["ticket"], comment=comment, via="api", requester_email=requester_email or "",
    )
    fired = [t for t in triggers if matches(t.conditions, facts)]
    # triggers that only send mail fire here, in the same statement; any other (or a reply
    # target to fulfil) takes the whole change path, which runs them all
    inline = not reply_due and all(t.notifies_only for t in fired)
    changes = {"comment": {"id": str(comment_id), "visibility": data.visibility.value}}
    audits = [(uuid.uuid4(), ticket_id, actor.type.value, actor_id, "comment", json.dumps(changes), "api")]
    outbox = [(event_id, events.TOPIC_COMMENTED, str(ticket_id), json.dumps(payload))]
    if inline and fired:
        trigger_audits, notes = _notifications(fired, snapshot, payload["ticket"], comment)
        audits += trigger_audits
        outbox += notes
    async with driver_of(session) as connection:
        created_at = await connection.fetchval(
            _WRITE, ticket_id, now, public,
            comment_id, actor.type.value, actor_id, data.visibility.value, data.body,
            *map(list, zip(*audits)), *map(list, zip(*outbox)),
        )
    if not inline:
        await settle(session, ticket_id, facts, triggers, actor, reply_due)
    return CommentOut(
        id=comment_id, ticket_id=ticket_id, author_type=actor.type, author_customer_id=None,
        author_agent_id=actor_id, visibility=data.visibility, body=data.body, html_body=None,
        inbound_message_id=None, created_at=created_at, attachments=[],
    )
