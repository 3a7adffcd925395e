"""What agents and integrations do to tickets: create, update (one or many), comment, merge, delete.

Each change writes its audit entry and outbox events in the caller's transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core import events
from core.actor import Actor
from core.agents.models import Agent
from core.audit.service import audit_service, plain
from core.clock import utcnow
from core.customers.models import Customer
from core.customers.service import customer_service
from core.enums import AgentRole, TicketStatus, Visibility
from core.errors import Conflict, Invalid, NotFound
from core.groups.models import Group
from core.tickets.api_comment import check_comment
from core.tickets.repository import check_external_id
from core.tickets.models import Tag, Ticket, TicketComment, ticket_followers
from core.tickets.schemas import CommentIn, MergeIn, TicketCreate, TicketUpdate
from core.tickets.service import participant_service, snapshot, ticket_service

MERGE_FOLLOWER_CAP = 100


class TicketChangeService:
    async def create(self, session: AsyncSession, data: TicketCreate, actor: Actor) -> Ticket:
        if data.requester_id is not None:
            requester = await session.get(Customer, data.requester_id)
            if requester is None:
                raise Invalid("unknown requester", {"requester_id": "no such customer"})
        else:
            assert data.requester is not None
            requester = await customer_service.find_or_create(
                session, email=data.requester.email, name=data.requester.name
            )
        await self._check_references(session, data.assignee_id, data.group_id)
        assert data.comment is not None  # TicketCreate fills it from description
        await check_external_id(session, data.external_id)
        ticket = await ticket_service.create(
            session, subject=data.subject, description=data.comment.body, requester_id=requester.id,
            channel=data.channel, group_id=data.group_id, organization_id=requester.organization_id,
            actor_type=actor.type, actor_id=actor.id, via="api", tags=data.tags,
            fields={
                "status": data.status, "priority": data.priority, "type": data.type,
                "assignee_id": data.assignee_id, "custom_fields": data.custom_fields,
                "external_id": data.external_id,
            },
        )
        await self._remember_tags(session, data.tags)
        await self.comment(session, ticket, data.comment, actor, announce=False)
        if data.assignee_id is not None:
            self._emit_assigned(session, ticket, previous=None)
        return ticket

    async def update(
        self, session: AsyncSession, ticket: Ticket, data: TicketUpdate, actor: Actor, *, via: str = "api"
    ) -> Ticket:
        if ticket.status is TicketStatus.closed:
            raise Conflict(
                f"ticket #{ticket.number} is closed and cannot change; a reply opens a follow-up"
            )
        fields = {name: getattr(data, name) for name in data.model_fields_set if name != "comment"}
        if fields.get("status") is TicketStatus.new and ticket.status is not TicketStatus.new:
            raise Invalid("a ticket cannot go back to new", {"status": "cannot return to new"})
        await self._check_references(session, fields.get("assignee_id"), fields.get("group_id"))
        changes: dict[str, dict[str, Any]] = {}
        previous_status, previous_assignee = ticket.status, ticket.assignee_id
        for name, value in fields.items():
            old = getattr(ticket, name)
            if old == value:
                continue
            changes[name] = {"from": plain(old), "to": plain(value)}
            setattr(ticket, name, value)
        if "status" in changes:
            ticket_service.apply_status_effects(ticket, previous_status)
        if "tags" in changes:
            await self._remember_tags(session, ticket.tags)
        if changes:
            ticket.updated_at = func.now()
            await session.flush()
            await session.refresh(ticket)
            audit_service.record(
                session, ticket_id=ticket.id, actor_type=actor.type, actor_id=actor.id,
                action="update", changes=changes, via=via,
            )
            if "status" in changes:
                events.emit(
                    session, topic=events.TOPIC_STATUS_CHANGED, ticket=snapshot(ticket),
                    previous_status=previous_status.value, via=via,
                )
            if "assignee_id" in changes and ticket.assignee_id is not None:
                self._emit_assigned(session, ticket, previous=previous_assignee)
            unannounced = {k: v for k, v in changes.items() if k not in ("status", "assignee_id")}
            if unannounced or ("assignee_id" in changes and ticket.assignee_id is None):
                events.emit(
                    session, topic=events.TOPIC_UPDATED, ticket=snapshot(ticket), changes=changes, via=via,
                )
        if data.comment is not None:
            await self.comment(session, ticket, data.comment, actor)
        return ticket

    async def update_many(
        self, session: AsyncSession, refs: Sequence[str], data: TicketUpdate, actor: Actor
    ) -> list[Ticket]:
        """All or nothing: any failure raises, and the caller's transaction rolls back."""
        tickets = await self.resolve_all(session, refs, field="ids")
        return [await self.update(session, t, data, actor, via="api:update_many") for t in tickets]

    async def comment(
        self, session: AsyncSession, ticket: Ticket, data: CommentIn, actor: Actor, *, announce: bool = True
    ) -> TicketComment:
        check_comment(ticket.status, ticket.number, data, actor)
        if data.visibility is Visibility.public and ticket.first_response_at is None and announce:
            ticket.first_response_at = utcnow()
        return await ticket_service.add_comment(
            session, ticket=ticket, author_type=actor.type, author_agent_id=actor.id,
            body=data.body, visibility=data.visibility, via="api", announce=announce,
        )

    async def delete(self, session: AsyncSession, ticket: Ticket, actor: Actor) -> None:
        ticket.deleted_at = utcnow()
        audit_service.record(
            session, ticket_id=ticket.id, actor_type=actor.type, actor_id=actor.id, action="delete", via="api",
        )
        events.emit(session, topic=events.TOPIC_DELETED, ticket=snapshot(ticket), via="api")

    async def merge(self, session: AsyncSession, target: Ticket, data: MergeIn, actor: Actor) -> Ticket:
        """Sources are closed with a link to the target; their people follow the target;
        their comments are listed with the target's; later mail to them lands in the target."""
        if target.status is TicketStatus.closed:
            raise Conflict(f"ticket #{target.number} is closed: merge into an open ticket")
        sources = await self.resolve_all(session, data.ids, field="ids")
        for i, source in enumerate(sources):
            if source.id == target.id:
                raise Invalid("a ticket cannot be merged into itself", {f"ids.{i}": "is the target"})
            if source.status is TicketStatus.closed or source.merged_into_id is not None:
                raise Invalid("closed or merged tickets cannot be merged", {f"ids.{i}": "closed or merged"})
        numbers = []
        for source in sources:
            numbers.append(source.number)
            source.merged_into_id = target.id
            await ticket_service.add_comment(
                session, ticket=source, author_type=actor.type, author_agent_id=actor.id,
                body=data.source_comment or f"Merged into #{target.number}.",
                visibility=Visibility.internal, via="api:merge",
            )
            await ticket_service.set_status(
                session, source, TicketStatus.closed, actor_type=actor.type, actor_id=actor.id, via="api:merge",
            )
            people = [source.requester_id, *await session.scalars(
                select(ticket_followers.c.customer_id).where(ticket_followers.c.ticket_id == source.id)
            )]
            await participant_service.add_followers(session, target, people, cap=MERGE_FOLLOWER_CAP)
        await ticket_service.add_comment(
            session, ticket=target, author_type=actor.type, author_agent_id=actor.id,
            body=data.target_comment or "Merged " + ", ".join(f"#{n}" for n in numbers) + " into this ticket.",
            visibility=Visibility.internal, via="api:merge",
        )
        audit_service.record(
            session, ticket_id=target.id, actor_type=actor.type, actor_id=actor.id, action="merge",
            changes={"merged": {"from": None, "to": numbers}}, via="api",
        )
        return target

    async def resolve_all(self, session: AsyncSession, refs: Sequence[str], *, field: str) -> list[Ticket]:
        tickets: list[Ticket] = []
        missing: dict[str, str] = {}
        for i, ref in enumerate(refs):
            ticket = await ticket_service.get(session, str(ref))
            if ticket is None:
                missing[f"{field}.{i}"] = f"no ticket {ref}"
            elif ticket.id not in {t.id for t in tickets}:
                tickets.append(ticket)
        if missing:
            raise Invalid("unknown tickets", missing)
        return tickets

    async def _check_references(
        self, session: AsyncSession, assignee_id: uuid.UUID | None, group_id: uuid.UUID | None
    ) -> None:
        if assignee_id is not None:
            agent = await session.get(Agent, assignee_id)
            if agent is None or not agent.active:
                raise Invalid("unknown assignee", {"assignee_id": "no such active agent"})
            if agent.role is AgentRole.light_agent:
                raise Invalid("light agents cannot be assigned", {"assignee_id": "is a light agent"})
        if group_id is not None and await session.get(Group, group_id) is None:
            raise Invalid("unknown group", {"group_id": "no such group"})

    async def _remember_tags(self, session: AsyncSession, tags: list[str]) -> None:
        if tags:
            await session.execute(
                insert(Tag).values([{"name": t} for t in tags]).on_conflict_do_nothing()
            )

    def _emit_assigned(self, session: AsyncSession, ticket: Ticket, *, previous: uuid.UUID | None) -> None:
        events.emit(
            session, topic=events.TOPIC_ASSIGNED, ticket=snapshot(ticket),
            assignee_id=str(ticket.assignee_id), previous_assignee_id=str(previous) if previous else None,
        )


ticket_changes = TicketChangeService()


async def require_ticket(session: AsyncSession, ref: str) -> Ticket:
    ticket = await ticket_service.get(session, ref)
    if ticket is None:
        raise NotFound("ticket not found")
    return ticket
