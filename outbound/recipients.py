"""Who is told about an event, and with which template — then who must not be mailed at all.

created       ▸ the requester: `ticket_created` (an acknowledgement; none for automatic mail)
assigned      ▸ the new assignee: `ticket_assigned` (not when agents assign themselves)
status_changed▸ solved: requester and followers, `ticket_status_changed`;
                solved → closed: the requester, `satisfaction_survey`
commented     ▸ public: requester and followers (not the author); a customer's or another
                agent's comment also to the assignee. Internal: only the assignee, when another
                agent wrote it. Automatic mail recorded as a comment tells nobody.
sla_warning   ▸ the assignee, else the agents of the ticket's group: `ticket_sla_warning`
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.agents.models import Agent
from core.customers.models import Customer
from core.events import OutboundDelivery
from core.groups.models import group_members
from core.mail.addresses import support_mailbox
from core.tickets.models import ticket_followers

TICKET_CREATED = "ticket_created"
TICKET_ASSIGNED = "ticket_assigned"
TICKET_STATUS_CHANGED = "ticket_status_changed"
TICKET_NEW_COMMENT = "ticket_new_comment"
TICKET_SLA_WARNING = "ticket_sla_warning"
SATISFACTION_SURVEY = "satisfaction_survey"
TEMPLATES = (
    TICKET_CREATED, TICKET_ASSIGNED, TICKET_STATUS_CHANGED, TICKET_NEW_COMMENT,
    TICKET_SLA_WARNING, SATISFACTION_SURVEY,
)
# sent by us on our own initiative, not carrying anybody's words: bounded per address and hour
AUTOMATIC = frozenset({TICKET_CREATED, TICKET_STATUS_CHANGED, SATISFACTION_SURVEY})
AUTOMATIC_MAIL_TAGS = frozenset({"auto_reply", "bulk", "bounce"})
_ROBOT_LOCALS = ("mailer-daemon", "postmaster", "noreply", "no-reply", "donotreply", "do-not-reply")


@dataclass(frozen=True)
class Recipient:
    address: str
    template: str
    customer: Customer | None = None
    agent: Agent | None = None


def _uuid(value: Any) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


async def _customers(session: AsyncSession, ticket: dict[str, Any], *, followers: bool) -> list[Customer]:
    ids = [i for i in [_uuid(ticket.get("requester_id"))] if i]
    found = list(await session.scalars(select(Customer).where(Customer.id.in_(ids)))) if ids else []
    if followers and (ticket_id := _uuid(ticket.get("id"))):
        found += list(await session.scalars(
            select(Customer).join(ticket_followers, ticket_followers.c.customer_id == Customer.id)
            .where(ticket_followers.c.ticket_id == ticket_id).order_by(ticket_followers.c.created_at)
        ))
    return found


async def _agent(session: AsyncSession, agent_id: Any) -> Agent | None:
    ident = _uuid(agent_id)
    if ident is None:
        return None
    return await session.scalar(select(Agent).where(Agent.id == ident, Agent.active.is_(True)))


def _to_customers(customers: list[Customer], template: str, *, skip: uuid.UUID | None = None) -> list[Recipient]:
    return [Recipient(c.email, template, customer=c) for c in customers if c.id != skip]


def _robot_ticket(ticket: dict[str, Any]) -> bool:
    return bool(AUTOMATIC_MAIL_TAGS & set(ticket.get("tags") or []))


async def recipients_for(session: AsyncSession, event: dict[str, Any]) -> list[Recipient]:
    ticket = event.get("ticket") or {}
    kind = event.get("type")
    if kind == "created":
        if event.get("mail_kind") not in (None, "human"):
            return []
        return _to_customers(await _customers(session, ticket, followers=False), TICKET_CREATED)
    if kind == "assigned":
        if event.get("assignee_id") and event.get("assignee_id") == event.get("actor_id"):
            return []
        agent = await _agent(session, event.get("assignee_id"))
        return [Recipient(agent.email, TICKET_ASSIGNED, agent=agent)] if agent else []
    if kind == "status_changed":
        return await _status_recipients(session, event, ticket)
    if kind == "commented":
        return await _comment_recipients(session, event.get("comment") or {}, ticket)
    if kind == "sla_warning":
        agent = await _agent(session, ticket.get("assignee_id"))
        if agent is not None:
            return [Recipient(agent.email, TICKET_SLA_WARNING, agent=agent)]
        group_id = _uuid(ticket.get("group_id"))
        if group_id is None:
            return []
        agents = await session.scalars(
            select(Agent).join(group_members, group_members.c.agent_id == Agent.id)
            .where(group_members.c.group_id == group_id, Agent.active.is_(True)).order_by(Agent.email)
        )
        return [Recipient(a.email, TICKET_SLA_WARNING, agent=a) for a in agents]
    return []


async def _status_recipients(session: AsyncSession, event: dict[str, Any], ticket: dict[str, Any]) -> list[Recipient]:
    if _robot_ticket(ticket):
        return []
    status, previous = ticket.get("status"), event.get("previous_status")
    if status == "solved":
        return _to_customers(await _customers(session, ticket, followers=True), TICKET_STATUS_CHANGED)
    if status == "closed" and previous == "solved":
        return _to_customers(await _customers(session, ticket, followers=False), SATISFACTION_SURVEY)
    return []


async def _comment_recipients(
    session: AsyncSession, comment: dict[str, Any], ticket: dict[str, Any]
) -> list[Recipient]:
    if comment.get("mail_kind") not in (None, "human"):
        return []
    author_type, author_id = comment.get("author_type"), _uuid(comment.get("author_id"))
    assignee = await _agent(session, ticket.get("assignee_id"))
    to_assignee = (
        [Recipient(assignee.email, TICKET_NEW_COMMENT, agent=assignee)]
        if assignee is not None and assignee.id != author_id else []
    )
    if comment.get("visibility") != "public":
        return to_assignee if author_type == "agent" else []
    customers = _to_customers(
        await _customers(session, ticket, followers=True), TICKET_NEW_COMMENT,
        skip=author_id if author_type == "customer" else None,
    )
    return customers + to_assignee


@dataclass(frozen=True)
class Screened:
    accepted: list[Recipient]
    suppressed: list[tuple[Recipient, str]]


async def screen(
    session: AsyncSession, recipients: list[Recipient], *, mailboxes: dict[str, str], auto_per_hour: int,
    planned: dict[str, int] | None = None,
) -> Screened:
    """Drops our own addresses, robots, bouncing addresses and automatic mail over the hourly cap.

    `planned` counts automatic mail already planned in this transaction (and is updated). Mailers
    running side by side may each let one more through: the cap stops loops, it is not a quota."""
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
            if await _sent_last_hour(session, address) + planned.get(address, 0) >= auto_per_hour:
                reason = "rate_limited"
            else:
                planned[address] = planned.get(address, 0) + 1
        if reason is None:
            accepted.append(r)
        else:
            suppressed.append((r, reason))
    return Screened(accepted, suppressed)


async def _sent_last_hour(session: AsyncSession, address: str) -> int:
    since = datetime.now(UTC) - timedelta(hours=1)
    count = await session.scalar(
        select(func.count()).select_from(OutboundDelivery).where(
            OutboundDelivery.recipient == address,
            OutboundDelivery.template.in_(sorted(AUTOMATIC)),
            OutboundDelivery.created_at >= since,
        )
    )
    return count or 0
