"""Who is told about an event, and with which template — then who must not be mailed at all.

created       ▸ the requester: `ticket_created` (an acknowledgement; none for automatic mail)
assigned      ▸ the new assignee: `ticket_assigned` (not when agents assign themselves)
status_changed▸ solved: requester and followers, `ticket_status_changed`
satisfaction_survey ▸ the requester (not of automatic mail): `satisfaction_survey`
commented     ▸ public: requester and followers (not the author); a customer's or another
                agent's comment also to the assignee. Internal: only the assignee, when another
                agent wrote it. Automatic mail recorded as a comment tells nobody.
sla_warning   ▸ the assignee, else the agents of the ticket's group: `ticket_sla_warning`
notification  ▸ a trigger's `notify_requester|assignee|group`: `trigger_notification` (never
                to the requester of automatic mail). With a built-in `template` (the seeded
                default triggers): that template, to the people the rules above name for it
                within the action's audience — the same safety rules whatever the trigger's
                conditions say (no mail for automatic mail, internal notes never to customers,
                nobody is told of their own comment or self-assignment).
updated, deleted ▸ nobody

created, assigned, status_changed and commented events written by the change path carry
`mailed_by_triggers`: their mail is the triggers' notification events, not theirs.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.agents.models import Agent
from core.customers.models import Customer
from core.db import driver_of
from core.enums import AuthorType, TicketStatus, Visibility
from core.events import (
    CommentFacts,
    Event,
    OutboundDelivery,
    SatisfactionSurvey,
    SlaWarning,
    TicketAssigned,
    TicketCommented,
    TicketCreated,
    TicketStatusChanged,
    TriggerNotification,
)
from core.groups.models import group_members
from core.mail.addresses import support_mailbox
from core.tickets.models import ticket_followers
from core.tickets.schemas import TicketOut

TICKET_CREATED = "ticket_created"
TICKET_ASSIGNED = "ticket_assigned"
TICKET_STATUS_CHANGED = "ticket_status_changed"
TICKET_NEW_COMMENT = "ticket_new_comment"
TICKET_SLA_WARNING = "ticket_sla_warning"
SATISFACTION_SURVEY = "satisfaction_survey"
TRIGGER_NOTIFICATION = "trigger_notification"
TEMPLATES = (
    TICKET_CREATED, TICKET_ASSIGNED, TICKET_STATUS_CHANGED, TICKET_NEW_COMMENT,
    TICKET_SLA_WARNING, SATISFACTION_SURVEY, TRIGGER_NOTIFICATION,
)
# sent by us on our own initiative, not carrying anybody's words: bounded per address and hour
AUTOMATIC = frozenset({TICKET_CREATED, TICKET_STATUS_CHANGED, SATISFACTION_SURVEY, TRIGGER_NOTIFICATION})
AUTOMATIC_MAIL_TAGS = frozenset({"auto_reply", "bulk", "bounce"})
_ROBOT_LOCALS = ("mailer-daemon", "postmaster", "noreply", "no-reply", "donotreply", "do-not-reply")


@dataclass(frozen=True)
class Recipient:
    address: str
    template: str
    customer: Customer | None = None
    agent: Agent | None = None


async def _customers(session: AsyncSession, ticket: TicketOut, *, followers: bool) -> list[Customer]:
    # by primary key: a requester the mailer loaded for its whole batch costs no query here
    requester = await session.get(Customer, ticket.requester_id) if ticket.requester_id is not None else None
    found = [requester] if requester is not None else []
    if followers:
        found += list(await session.scalars(
            select(Customer).join(ticket_followers, ticket_followers.c.customer_id == Customer.id)
            .where(ticket_followers.c.ticket_id == ticket.id).order_by(ticket_followers.c.created_at)
        ))
    return found


async def _agent(session: AsyncSession, agent_id: uuid.UUID | None) -> Agent | None:
    if agent_id is None:
        return None
    return await session.scalar(select(Agent).where(Agent.id == agent_id, Agent.active.is_(True)))


async def _group_agents(session: AsyncSession, group_id: uuid.UUID | None) -> list[Agent]:
    if group_id is None:
        return []
    return list(await session.scalars(
        select(Agent).join(group_members, group_members.c.agent_id == Agent.id)
        .where(group_members.c.group_id == group_id, Agent.active.is_(True)).order_by(Agent.email)
    ))


def _to_customers(customers: list[Customer], template: str, *, skip: uuid.UUID | None = None) -> list[Recipient]:
    return [Recipient(c.email, template, customer=c) for c in customers if c.id != skip]


def _robot_ticket(ticket: TicketOut) -> bool:
    return bool(AUTOMATIC_MAIL_TAGS & set(ticket.tags))


def _human(mail_kind: str | None) -> bool:
    return mail_kind in (None, "human")


async def recipients_for(session: AsyncSession, event: Event) -> list[Recipient]:
    """Who is told; nobody for the events that are not mailed (updated, deleted)."""
    ticket = event.ticket
    if event.mailed_by_triggers:
        return []
    if isinstance(event, TicketCreated):
        if not _human(event.mail_kind):
            return []
        return _to_customers(await _customers(session, ticket, followers=False), TICKET_CREATED)
    if isinstance(event, TicketAssigned):
        if event.assignee_id == event.actor_id:
            return []
        agent = await _agent(session, event.assignee_id)
        return [Recipient(agent.email, TICKET_ASSIGNED, agent=agent)] if agent else []
    if isinstance(event, TicketStatusChanged):
        return await _status_recipients(session, event, ticket)
    if isinstance(event, TicketCommented):
        return await _comment_recipients(session, event.comment, ticket)
    if isinstance(event, SlaWarning):
        agent = await _agent(session, ticket.assignee_id)
        if agent is not None:
            return [Recipient(agent.email, TICKET_SLA_WARNING, agent=agent)]
        return [Recipient(a.email, TICKET_SLA_WARNING, agent=a) for a in await _group_agents(session, ticket.group_id)]
    if isinstance(event, TriggerNotification):
        return await _notification_recipients(session, event)
    if isinstance(event, SatisfactionSurvey):
        if _robot_ticket(ticket):
            return []
        return _to_customers(await _customers(session, ticket, followers=False), SATISFACTION_SURVEY)
    return []


async def _notification_recipients(session: AsyncSession, event: TriggerNotification) -> list[Recipient]:
    """A trigger's notification: never to the requester of automatic mail (no loops)."""
    ticket = event.ticket
    if event.template is not None:
        return await _builtin_recipients(session, event)
    if event.audience == "requester":
        if _robot_ticket(ticket) or (event.comment is not None and not _human(event.comment.mail_kind)):
            return []
        return _to_customers(await _customers(session, ticket, followers=False), TRIGGER_NOTIFICATION)
    if event.audience == "assignee":
        agent = await _agent(session, ticket.assignee_id)
        return [Recipient(agent.email, TRIGGER_NOTIFICATION, agent=agent)] if agent else []
    return [Recipient(a.email, TRIGGER_NOTIFICATION, agent=a) for a in await _group_agents(session, ticket.group_id)]


async def _builtin_recipients(session: AsyncSession, event: TriggerNotification) -> list[Recipient]:
    """A built-in mail asked for by a trigger: the rules of the event that used to send it,
    narrowed to the action's audience."""
    ticket, template, audience = event.ticket, event.template, event.audience
    if template == TICKET_CREATED:
        if not _human(event.mail_kind) or audience != "requester":
            return []
        return _to_customers(await _customers(session, ticket, followers=False), TICKET_CREATED)
    if template == TICKET_ASSIGNED:
        if ticket.assignee_id is None or ticket.assignee_id == event.actor_id:
            return []
        if audience == "group":
            return [Recipient(a.email, TICKET_ASSIGNED, agent=a) for a in await _group_agents(session, ticket.group_id)
                    if a.id != event.actor_id]
        agent = await _agent(session, ticket.assignee_id)
        return [Recipient(agent.email, TICKET_ASSIGNED, agent=agent)] if agent and audience == "assignee" else []
    if template == TICKET_STATUS_CHANGED:
        if _robot_ticket(ticket) or audience != "requester":
            return []
        return _to_customers(await _customers(session, ticket, followers=True), TICKET_STATUS_CHANGED)
    if template == TICKET_NEW_COMMENT and event.comment is not None:
        return await _builtin_comment_recipients(session, event.comment, ticket, audience)
    return []


async def _builtin_comment_recipients(
    session: AsyncSession, comment: CommentFacts, ticket: TicketOut, audience: str,
) -> list[Recipient]:
    if not _human(comment.mail_kind):
        return []
    public = comment.visibility is Visibility.public
    if audience == "requester":
        if not public:
            return []
        skip = comment.author_id if comment.author_type is AuthorType.customer else None
        return _to_customers(await _customers(session, ticket, followers=True), TICKET_NEW_COMMENT, skip=skip)
    if not public and comment.author_type is not AuthorType.agent:
        return []
    if audience == "assignee":
        agents = [a for a in [await _agent(session, ticket.assignee_id)] if a is not None]
    else:
        agents = await _group_agents(session, ticket.group_id)
    return [Recipient(a.email, TICKET_NEW_COMMENT, agent=a) for a in agents if a.id != comment.author_id]


async def _status_recipients(session: AsyncSession, event: TicketStatusChanged, ticket: TicketOut) -> list[Recipient]:
    if _robot_ticket(ticket):
        return []
    if ticket.status is TicketStatus.solved:
        return _to_customers(await _customers(session, ticket, followers=True), TICKET_STATUS_CHANGED)
    return []


async def _comment_recipients(session: AsyncSession, comment: CommentFacts, ticket: TicketOut) -> list[Recipient]:
    if not _human(comment.mail_kind):
        return []
    author_type, author_id = comment.author_type, comment.author_id
    assignee = await _agent(session, ticket.assignee_id)
    to_assignee = (
        [Recipient(assignee.email, TICKET_NEW_COMMENT, agent=assignee)]
        if assignee is not None and assignee.id != author_id else []
    )
    if comment.visibility is not Visibility.public:
        return to_assignee if author_type is AuthorType.agent else []
    customers = _to_customers(
        await _customers(session, ticket, followers=True), TICKET_NEW_COMMENT,
        skip=author_id if author_type is AuthorType.customer else None,
    )
    return customers + to_assignee


@dataclass(frozen=True)
class Screened:
    accepted: list[Recipient]
    suppressed: list[tuple[Recipient, str]]


async def screen(
    session: AsyncSession, recipients: list[Recipient], *, mailboxes: dict[str, str], auto_per_hour: int,
    planned: dict[str, int] | None = None, sent: Mapping[str, int] | None = None,
) -> Screened:
    """Drops our own addresses, robots, bouncing addresses and automatic mail over the hourly cap.

    `planned` counts automatic mail already planned in this transaction (and is updated). Mailers
    running side by side may each let one more through: the cap stops loops, it is not a quota.
    `sent`: the addresses' counts of the last hour, read beforehand for a whole batch
    (`sent_last_hour`); otherwise each address is counted here."""
    planned = {} if planned is None else planned
    accepted: list[Recipient] = []
    suppressed: list[tuple[Recipient, str]] = []
    seen: set[str] = set()
    for r in recipients:
        address = r.address.strip().lower()
        if address in seen:
            continue
        seen.add(address)
        local = address.partition("@")[0]
        reason = None
        if "@" not in address or support_mailbox(address, mailboxes) is not None:
            reason = "own_address"
        elif local.split("+")[0] in _ROBOT_LOCALS:
            reason = "automatic_sender"
        elif r.customer is not None and r.customer.bouncing:
            reason = "bouncing"
        elif r.template in AUTOMATIC:
            before = sent.get(address, 0) if sent is not None else await _sent_last_hour(session, address)
            if before + planned.get(address, 0) >= auto_per_hour:
                reason = "rate_limited"
            else:
                planned[address] = planned.get(address, 0) + 1
        if reason is None:
            accepted.append(r)
        else:
            suppressed.append((r, reason))
    return Screened(accepted, suppressed)


async def _sent_last_hour(session: AsyncSession, address: str) -> int:
    return (await _sent_counts(session, [address])).get(address, 0)


# plain SQL on the session's connection: through the ORM this one statement cost a fifth of
# a batch's planning
_SENT_LAST_HOUR = (
    f"SELECT recipient, count(*) FROM {OutboundDelivery.__tablename__} WHERE recipient = ANY($1::text[])"
    " AND template = ANY($2::text[]) AND created_at >= $3 GROUP BY recipient"
)


async def sent_last_hour(session: AsyncSession, recipients: list[Recipient]) -> dict[str, int]:
    """`_sent_last_hour` for every address of these recipients that gets automatic mail, in
    one query (the mailer screens a batch of events at once: one query each cost a fifth of
    its planning)."""
    addresses = sorted({r.address.strip().lower() for r in recipients if r.template in AUTOMATIC})
    return await _sent_counts(session, addresses) if addresses else {}


async def _sent_counts(session: AsyncSession, addresses: list[str]) -> dict[str, int]:
    since = datetime.now(UTC) - timedelta(hours=1)
    async with driver_of(session) as driver:
        rows = await driver.fetch(_SENT_LAST_HOUR, addresses, sorted(AUTOMATIC), since)
    return {row[0]: row[1] for row in rows}
