"""The one path for every ticket change: create, update (one or many), comment, merge, delete,
and the steps mail and jobs take.

Each change writes its audit entries and outbox events, then runs its triggers, all in the
caller's transaction.
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
from core.enums import AgentRole, AuthorType, TicketStatus, Visibility
from core.errors import Conflict, Invalid, NotFound
from core.groups.models import Group
from core.attachments import AttachmentStore
from core.events import CommentFacts
from core.tickets.api_comment import add_fast_comment, check_comment
from core.tickets.change import Change, comment_facts
from core.tickets.repository import check_external_id
from core.tickets.models import Tag, Ticket, TicketComment, ticket_followers
from core.tickets.schemas import CommentIn, CommentOut, MergeIn, TicketCreate, TicketOut, TicketUpdate
from core.tickets.service import participant_service, ticket_service
from core.tickets.uploads import Upload, store_uploads
from core.tickets.views import comments_out
from core.sla.targets import sla_targets
from core.triggers.conditions import Facts, matches
from core.triggers.runner import LoadedTrigger, trigger_runner

MERGE_FOLLOWER_CAP = 100


class TicketChangeService:
    """Every change of a ticket, whatever makes it (API, mail, macro, trigger, job), ends in
    `settle`: the change's triggers run in its transaction, after its audits and events."""

    async def create(self, session: AsyncSession, data: TicketCreate, actor: Actor) -> Ticket:
        triggers_decide_mail(session)
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
        comment = await self._comment(session, ticket, data.comment, actor, announce=False)
        if data.assignee_id is not None:
            self._emit_assigned(session, ticket, previous=None, actor=actor)
        await session.flush()  # the comment's row, for triggers that look at it
        await self.settle(session, Change.created(ticket, actor, "api", comment_facts(comment)))
        return ticket

    async def announce_created(
        self, session: AsyncSession, ticket: Ticket, actor: Actor, *, via: str, mail_kind: str | None = None,
        comment: CommentFacts | None = None, sending_host: str | None = None, verified: bool = True,
    ) -> None:
        """The `created` event and triggers of a ticket made elsewhere (mail), already flushed."""
        triggers_decide_mail(session)
        ticket_service.announce_created(
            session, ticket, via=via, mail_kind=mail_kind, sending_host=sending_host, verified=verified,
        )
        change = Change.created(ticket, actor, via, comment)
        change.mail_kind, change.sending_host, change.verified = mail_kind, sending_host, verified
        await self.settle(session, change)

    def begin(self, session: AsyncSession, ticket: Ticket, actor: Actor, via: str) -> Change:
        """A change made step by step by its caller (mail), settled with `settle`."""
        triggers_decide_mail(session)
        return Change.of(ticket, actor, via)

    async def settle(self, session: AsyncSession, change: Change, **options: Any) -> None:
        """The end of every change: its triggers, then its SLA targets (after what triggers did)."""
        triggers_decide_mail(session)
        await trigger_runner.run(session, change, apply=self.apply_update, **options)
        await sla_targets.on_change(session, change)

    async def update(
        self, session: AsyncSession, ticket: Ticket, data: TicketUpdate, actor: Actor, *, via: str = "api"
    ) -> Ticket:
        triggers_decide_mail(session)
        change = Change.of(ticket, actor, via)
        comment = await self._update(session, ticket, data, actor, via=via)
        if comment is not None:
            change.commented(comment)
        await self.settle(session, change)
        return ticket

    async def apply_update(
        self, session: AsyncSession, change: Change, data: TicketUpdate, actor: Actor, via: str,
        extra: dict[str, Any],
    ) -> None:
        """A trigger's or automation's field changes, as a step of `change` (no triggers of its own)."""
        triggers_decide_mail(session)  # an automation acts before its change is settled
        assignee = change.ticket.assignee_id
        await self._update(session, change.ticket, data, actor, via=via, extra=extra)
        if change.ticket.assignee_id != assignee:
            change.assigned_by = actor.id

    async def _update(
        self, session: AsyncSession, ticket: Ticket, data: TicketUpdate, actor: Actor, *, via: str,
        extra: dict[str, Any] | None = None,
    ) -> TicketComment | None:
        """The fields and comment of `data`, audited (with `extra`) and announced; no triggers."""
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
                action="update", changes={**changes, **(extra or {})}, via=via,
            )
            self._announce_update(session, ticket, changes, previous_status, previous_assignee, actor, via)
        if data.comment is not None:
            return await self._comment(session, ticket, data.comment, actor, via=via)
        return None

    def _announce_update(
        self, session: AsyncSession, ticket: Ticket, changes: dict[str, dict[str, Any]],
        previous_status: TicketStatus, previous_assignee: uuid.UUID | None, actor: Actor, via: str,
    ) -> None:
        """`status_changed`, `assigned`, and `updated` for the fields those two do not announce."""
        snap = TicketOut.model_validate(ticket)
        if "status" in changes:
            events.emit(
                session, topic=events.TOPIC_STATUS_CHANGED, ticket=snap, previous_status=previous_status, via=via,
            )
        assigned = "assignee_id" in changes and ticket.assignee_id is not None
        if assigned:
            self._emit_assigned(session, ticket, previous=previous_assignee, actor=actor)
        rest = {k: v for k, v in changes.items() if k != "status" and not (k == "assignee_id" and assigned)}
        if rest:
            events.emit(session, topic=events.TOPIC_UPDATED, ticket=snap, changes=rest, via=via)

    async def update_many(
        self, session: AsyncSession, refs: Sequence[str], data: TicketUpdate, actor: Actor
    ) -> list[Ticket]:
        """All or nothing: any failure raises, and the caller's transaction rolls back."""
        tickets = await self.resolve_all(session, refs, field="ids")
        return [await self.update(session, t, data, actor, via="api:update_many") for t in tickets]

    async def add_comment(
        self, session: AsyncSession, ref: str, data: CommentIn, actor: Actor, *,
        uploads: Sequence[Upload] = (), store: AttachmentStore | None = None,
    ) -> CommentOut:
        """A comment from the API, with its uploads. Without uploads it is written on the
        driver (the request's hottest write); its triggers run all the same."""
        if not uploads:
            return await add_fast_comment(session, ref, data, actor, settle=self._settle_fast)
        assert store is not None
        triggers_decide_mail(session)
        ticket = await require_ticket(session, ref)
        change = Change.of(ticket, actor, "api")
        comment = await self._comment(session, ticket, data, actor)
        change.commented(comment)
        await store_uploads(store, session, comment, uploads)
        [out] = await comments_out(session, [comment])
        await self.settle(session, change)
        return out

    async def _settle_fast(
        self, session: AsyncSession, ticket_id: uuid.UUID, facts: Facts, triggers: list[LoadedTrigger], actor: Actor,
        reply_due: bool,
    ) -> None:
        """After a driver-written comment: the ORM ticket is loaded only if a trigger fires or
        the comment answers a running reply target."""
        if not reply_due and not any(matches(t.conditions, facts) for t in triggers):
            return
        ticket = await session.get(Ticket, ticket_id, populate_existing=True)
        assert ticket is not None
        change = Change.of(ticket, actor, "api")
        change.comment = facts.comment
        await self.settle(session, change, triggers=triggers)

    async def _comment(
        self, session: AsyncSession, ticket: Ticket, data: CommentIn, actor: Actor, *, announce: bool = True,
        via: str = "api",
    ) -> TicketComment:
        check_comment(ticket.status, ticket.number, data, actor)
        if (
            data.visibility is Visibility.public and ticket.first_response_at is None and announce
            and actor.type is AuthorType.agent
        ):
            ticket.first_response_at = utcnow()
        return await ticket_service.add_comment(
            session, ticket=ticket, author_type=actor.type, author_agent_id=actor.id,
            body=data.body, visibility=data.visibility, via=via, announce=announce,
        )

    async def set_status(
        self, session: AsyncSession, ticket: Ticket, status: TicketStatus, actor: Actor, *, via: str
    ) -> bool:
        """A status change made by the desk itself (jobs, mail), as one change."""
        triggers_decide_mail(session)
        change = Change.of(ticket, actor, via)
        changed = await ticket_service.set_status(
            session, ticket, status, actor_type=actor.type, actor_id=actor.id, via=via,
        )
        if changed:
            await self.settle(session, change)
        return changed

    async def delete(self, session: AsyncSession, ticket: Ticket, actor: Actor) -> None:
        ticket.deleted_at = utcnow()
        audit_service.record(
            session, ticket_id=ticket.id, actor_type=actor.type, actor_id=actor.id, action="delete", via="api",
        )
        events.emit(session, topic=events.TOPIC_DELETED, ticket=TicketOut.model_validate(ticket), via="api")

    async def merge(self, session: AsyncSession, target: Ticket, data: MergeIn, actor: Actor) -> Ticket:
        """Sources are closed with a link to the target; their people follow the target;
        their comments are listed with the target's; later mail to them lands in the target."""
        if target.status is TicketStatus.closed:
            raise Conflict(f"ticket #{target.number} is closed: merge into an open ticket")
        triggers_decide_mail(session)
        sources = await self.resolve_all(session, data.ids, field="ids")
        for i, source in enumerate(sources):
            if source.id == target.id:
                raise Invalid("a ticket cannot be merged into itself", {f"ids.{i}": "is the target"})
            if source.status is TicketStatus.closed or source.merged_into_id is not None:
                raise Invalid("closed or merged tickets cannot be merged", {f"ids.{i}": "closed or merged"})
        numbers = []
        target_change = Change.of(target, actor, "api:merge")
        for source in sources:
            numbers.append(source.number)
            change = Change.of(source, actor, "api:merge")
            source.merged_into_id = target.id
            change.commented(await ticket_service.add_comment(
                session, ticket=source, author_type=actor.type, author_agent_id=actor.id,
                body=data.source_comment or f"Merged into #{target.number}.",
                visibility=Visibility.internal, via="api:merge",
            ))
            await ticket_service.set_status(
                session, source, TicketStatus.closed, actor_type=actor.type, actor_id=actor.id, via="api:merge",
            )
            people = [source.requester_id, *await session.scalars(
                select(ticket_followers.c.customer_id).where(ticket_followers.c.ticket_id == source.id)
            )]
            await participant_service.add_followers(session, target, people, cap=MERGE_FOLLOWER_CAP)
            await self.settle(session, change)
        target_change.commented(await ticket_service.add_comment(
            session, ticket=target, author_type=actor.type, author_agent_id=actor.id,
            body=data.target_comment or "Merged " + ", ".join(f"#{n}" for n in numbers) + " into this ticket.",
            visibility=Visibility.internal, via="api:merge",
        ))
        audit_service.record(
            session, ticket_id=target.id, actor_type=actor.type, actor_id=actor.id, action="merge",
            changes={"merged": {"from": None, "to": numbers}}, via="api",
        )
        await self.settle(session, target_change)
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

    def _emit_assigned(
        self, session: AsyncSession, ticket: Ticket, *, previous: uuid.UUID | None, actor: Actor
    ) -> None:
        events.emit(
            session, topic=events.TOPIC_ASSIGNED, ticket=TicketOut.model_validate(ticket),
            assignee_id=ticket.assignee_id, previous_assignee_id=previous, actor_id=actor.id,
        )


ticket_changes = TicketChangeService()


def triggers_decide_mail(session: AsyncSession) -> None:
    """This transaction's changes run their triggers: the built-in mails of their events are
    sent when a notification trigger asks for them (core/events.py)."""
    session.info[events.TRIGGERS_DECIDE_MAIL] = True


async def require_ticket(session: AsyncSession, ref: str) -> Ticket:
    ticket = await ticket_service.get(session, ref)
    if ticket is None:
        raise NotFound("ticket not found")
    return ticket
