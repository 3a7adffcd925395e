"""Triggers run inside the change's transaction: in position order, each at most once per
change, again after every firing until nothing more fires (at most MAX_PASSES passes).

A trigger fires in a savepoint: if any of its actions fails (a deleted group, a closed
ticket, a bug), its effects are undone, the reason is logged, and the change goes on — a
trigger never blocks mail ingest or the API.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from core import events
from core.actor import Actor
from core.agents.models import Agent
from core.audit.service import audit_service
from core.clock import utcnow
from core.customers.models import Customer
from core.db import process_cache
from core.enums import AgentRole, AuthorType
from core.errors import DomainError
from core.groups.models import group_members
from core.models_base import ByVersion, active_rows_version
from core.tickets.change import Change
from core.tickets.schemas import TicketOut, TicketUpdate
from core.triggers.conditions import Facts, matches, via_kind
from core.triggers.models import Trigger
from core.triggers.schemas import FIELD_ACTIONS, NOTIFY_ACTIONS, ROUND_ROBIN, Conditions, TriggerAction

log = logging.getLogger(__name__)

MAX_PASSES = 10
TRIGGER_ACTOR = Actor(AuthorType.system, None)
_CACHE = "helpdesk.triggers"  # session.info: one read of the triggers per transaction

# applies a ticket update as part of the change: (session, change, update, actor, via, audit extra)
Apply = Callable[[AsyncSession, Change, TicketUpdate, Actor, str, dict[str, Any]], Awaitable[None]]


@dataclass(frozen=True)
class LoadedTrigger:
    id: uuid.UUID
    title: str
    conditions: Conditions
    actions: list[TriggerAction]

    @property
    def notifies_only(self) -> bool:
        """Its actions only send mail: it changes no fact another trigger reads, and firing it
        writes nothing that can fail (no savepoint needed)."""
        return all(a.field in NOTIFY_ACTIONS for a in self.actions)


def notification_fields(
    change_via: str, kind: str, trigger: LoadedTrigger, action: TriggerAction, *, comment: events.CommentFacts | None,
    mail_kind: str | None = None, sending_host: str | None = None, verified: bool = True,
    actor_id: uuid.UUID | None = None, previous_status: str | None = None,
) -> dict[str, Any]:
    """The `notification` event of a `notify_*` action, but for its ticket. A built-in mail
    (`template`) carries the change's own `via` and the facts its rules need."""
    fields: dict[str, Any] = {
        "trigger_id": trigger.id, "trigger_title": trigger.title, "audience": action.field.removeprefix("notify_"),
        "comment": comment, "via": kind, **action.value,
    }
    if action.value.get("template"):
        fields.update(
            via=change_via, mail_kind=mail_kind if mail_kind is not None else (comment.mail_kind if comment else None),
            sending_host=sending_host, verified=verified, actor_id=actor_id, previous_status=previous_status,
        )
    return fields


def notification_audit(trigger: LoadedTrigger, kind: str = "trigger") -> dict[str, Any]:
    """The audit entry's `changes` of a firing."""
    return {kind: {"id": str(trigger.id), "title": trigger.title}, "actions": [a.field for a in trigger.actions]}


class TriggerFailed(Exception):
    """An action that cannot be carried out (the trigger is skipped, with this reason)."""


class ParsedTriggers:
    """Triggers as read, by (id, updated_at): a version of a trigger is validated once per
    process, not on every change (the API comment path reads them with every request).
    Bounded: past MAX entries (old versions) it starts again."""

    MAX = 2_000

    def __init__(self) -> None:
        self._parsed: dict[tuple[str, str], LoadedTrigger | None] = {}
        self._active: ByVersion[list[LoadedTrigger]] = ByVersion()  # by ACTIVE_VERSION

    def active(self, version: str) -> list[LoadedTrigger] | None:
        return self._active.get(version)

    def remember(self, version: str, triggers: list[LoadedTrigger]) -> None:
        self._active.remember(version, triggers)

    def parse(self, rows: Sequence[Any]) -> list[LoadedTrigger]:
        """Rows of (id, title, conditions, actions[, updated_at]); one that cannot be read is skipped."""
        loaded = []
        for row in rows:
            key = (str(row[0]), str(row[4])) if len(row) > 4 and row[4] is not None else None
            trigger = self._parsed.get(key) if key is not None else None
            if trigger is None:
                trigger = _parse(row)
                if key is not None and trigger is not None:
                    if len(self._parsed) >= self.MAX:
                        self._parsed.clear()
                    self._parsed[key] = trigger
            if trigger is not None:
                loaded.append(trigger)
        return loaded


def _parse(row: Sequence[Any]) -> LoadedTrigger | None:
    try:
        return LoadedTrigger(
            id=uuid.UUID(str(row[0])), title=row[1], conditions=Conditions.model_validate(row[2] or {}),
            actions=[TriggerAction.model_validate(a) for a in row[3] or []],
        )
    except (ValidationError, ValueError) as exc:
        log.error("trigger %s (%s) cannot be read and is skipped: %s", row[0], row[1], exc)
        return None


def parsed_triggers(session: AsyncSession) -> ParsedTriggers:
    """The process's parsed triggers (the session's Database holds them)."""
    return process_cache(session, "triggers", ParsedTriggers)


# the API comment reads it with its ticket on every request, ingest once per batch
ACTIVE_VERSION = active_rows_version(Trigger.__tablename__)
_ACTIVE = (
    select(Trigger.id, Trigger.title, Trigger.conditions, Trigger.actions, Trigger.updated_at)
    .where(Trigger.active.is_(True)).order_by(Trigger.position, Trigger.created_at)
)


async def active_triggers(session: AsyncSession) -> list[LoadedTrigger]:
    cached = session.info.get(_CACHE)
    if cached is None:
        cached = session.info[_CACHE] = parsed_triggers(session).parse((await session.execute(_ACTIVE)).all())
    return cached


async def active_triggers_at(session: AsyncSession, version: str) -> list[LoadedTrigger]:
    """The active triggers, known by their version (read by the change's own first statement):
    read from the database only when this process has not seen that version. (Read after a
    newer edit committed, they are remembered under the older version: the edit raced the
    change, and the next change reads the newer version.)"""
    parsed = parsed_triggers(session)
    cached = parsed.active(version)
    if cached is None:
        cached = await active_triggers(session)
        parsed.remember(version, cached)
    session.info[_CACHE] = cached
    return cached


async def requester_email(session: AsyncSession, requester_id: uuid.UUID | None) -> str:
    """From the session's identity map when the requester is there (mail: found or created in
    this batch): no query, and so no autoflush, per change. Before, each ticket's query flushed
    the previous ticket's audit entries and events one row at a time."""
    if requester_id is None:
        return ""
    customer = await session.get(Customer, requester_id)
    return customer.email if customer is not None else ""


def facts_of(change: Change, requester_email: str) -> Facts:
    ticket = TicketOut.model_validate(change.ticket).model_dump(mode="json")
    return Facts(
        event=change.event, ticket=ticket, changes=change.changes(), comment=change.comment,
        via=via_kind(change.via), requester_email=requester_email, sla_metric=change.sla_metric,
        satisfaction_score=change.satisfaction_score,
    )


class TriggerRunner:
    async def run(
        self, session: AsyncSession, change: Change, *, apply: Apply,
        triggers: list[LoadedTrigger] | None = None,
    ) -> list[uuid.UUID]:
        """Runs the triggers on a change; returns the ids of those that fired, in order."""
        triggers = await active_triggers(session) if triggers is None else triggers
        if not triggers:
            return []
        email = await requester_email(session, change.ticket.requester_id)
        fired: list[uuid.UUID] = []
        for _ in range(MAX_PASSES):
            progress = False
            facts = facts_of(change, email)
            for trigger in triggers:
                if trigger.id in fired or not matches(trigger.conditions, facts):
                    continue
                fired.append(trigger.id)  # at most once per change, even when it failed
                if trigger.notifies_only:  # nothing changed that a condition reads
                    await self.notify(session, change, trigger, apply)
                    continue
                progress = await self.fire(session, change, trigger, apply) or progress
                facts = facts_of(change, email)
            if not progress:
                return fired
        log.error(
            "ticket #%s: triggers still firing after %d passes; stopped (fired: %s)",
            change.ticket.number, MAX_PASSES, ", ".join(map(str, fired)),
        )
        audit_service.record(
            session, ticket_id=change.ticket.id, actor_type=AuthorType.system, actor_id=None,
            action="trigger_loop", via="trigger",
            changes={"note": f"triggers stopped after {MAX_PASSES} passes", "fired": [str(f) for f in fired]},
        )
        return fired

    async def notify(self, session: AsyncSession, change: Change, trigger: LoadedTrigger, apply: Apply) -> None:
        """A trigger that only sends mail: its events and audit entry are added to the session
        (no statement runs, so no savepoint is needed to undo them)."""
        try:
            await self.act(session, change, trigger, apply)
        except Exception as exc:  # a bug of ours, or data the event model refuses: the change goes on
            log.warning(
                "trigger %s (%s) skipped on ticket #%s: %s", trigger.id, trigger.title, change.ticket.number, exc,
                exc_info=True,
            )

    async def fire(self, session: AsyncSession, change: Change, trigger: LoadedTrigger, apply: Apply) -> bool:
        """The trigger's actions, all or none; False (logged) if it could not act."""
        try:
            async with session.begin_nested():
                await self.act(session, change, trigger, apply)
        except Exception as exc:  # whatever it was, the change must go on without this trigger
            log.warning(
                "trigger %s (%s) skipped on ticket #%s: %s", trigger.id, trigger.title,
                change.ticket.number, exc, exc_info=not isinstance(exc, (TriggerFailed, DomainError, ValueError)),
            )
            await session.refresh(change.ticket)
            return False
        return True

    async def act(
        self, session: AsyncSession, change: Change, trigger: LoadedTrigger, apply: Apply, *, kind: str = "trigger",
    ) -> None:
        """The actions of a trigger (or of an automation: `kind`), audited under its name."""
        ticket = change.ticket
        named = {"id": str(trigger.id), "title": trigger.title}
        fields: dict[str, Any] = {}
        tags = list(ticket.tags)
        notes: list[TriggerAction] = []
        for action in trigger.actions:
            if action.field == "assignee_id" and action.value == ROUND_ROBIN:
                fields["assignee_id"] = await self.round_robin(session, fields.get("group_id", ticket.group_id))
            elif action.field == "tags":
                tags = list(action.value)
                fields["tags"] = tags
            elif action.field in FIELD_ACTIONS:
                fields[action.field] = action.value
            elif action.field == "add_tags":
                tags = tags + [t for t in action.value if t not in tags]
                fields["tags"] = tags
            elif action.field == "remove_tags":
                tags = [t for t in tags if t not in action.value]
                fields["tags"] = tags
            elif action.field == "comment":
                fields["comment"] = {"body": action.value, "visibility": "public" if action.public else "internal"}
            elif action.field in NOTIFY_ACTIONS:
                notes.append(action)
        if fields:
            await apply(session, change, TicketUpdate.model_validate(fields), TRIGGER_ACTOR, kind, {kind: named})
        snapshot = TicketOut.model_validate(ticket) if notes else None
        for action in notes:
            assert snapshot is not None
            events.emit(session, topic=events.TOPIC_NOTIFICATION, ticket=snapshot, **notification_fields(
                change.via, kind, trigger, action, comment=change.comment, mail_kind=change.mail_kind,
                sending_host=change.sending_host, verified=change.verified, actor_id=change.assigned_by
                if action.value.get("template") == "ticket_assigned" else change.actor.id,
                previous_status=change.before.get("status"),
            ))
        audit_service.record(
            session, ticket_id=ticket.id, actor_type=AuthorType.system, actor_id=None, action=kind,
            via=kind, changes=notification_audit(trigger, kind),
        )

    async def round_robin(self, session: AsyncSession, group_id: uuid.UUID | None) -> uuid.UUID:
        """The group's active (full) agent assigned longest ago; concurrent changes take different ones."""
        if group_id is None:
            raise TriggerFailed("round_robin needs a group on the ticket")
        agent_id = await session.scalar(
            select(group_members.c.agent_id)
            .join(Agent, Agent.id == group_members.c.agent_id)
            .where(group_members.c.group_id == group_id, Agent.active.is_(True), Agent.role != AgentRole.light_agent)
            .order_by(group_members.c.last_assigned_at.asc().nulls_first(), Agent.email)
            .limit(1).with_for_update(of=group_members, skip_locked=True)
        )
        if agent_id is None:
            raise TriggerFailed(f"round_robin: no active agent in group {group_id}")
        await session.execute(
            update(group_members)
            .where(group_members.c.group_id == group_id, group_members.c.agent_id == agent_id)
            .values(last_assigned_at=utcnow())
        )
        return agent_id


trigger_runner = TriggerRunner()
