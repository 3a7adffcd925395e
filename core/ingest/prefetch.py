"""The lookups a batch of inbound messages needs, made once per batch instead of once per message:
duplicate locks and checks, our own Message-IDs, agents and customers by address."""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession

from core.agents.models import Agent
from core.customers.models import Customer
from core.enums import AgentRole, InboundStatus, MessageDirection
from core.ingest.models import InboundMessage
from core.organizations.models import Organization
from core.tickets.models import MessageId

HANDLED = (InboundStatus.processed, InboundStatus.quarantined, InboundStatus.dropped)


def dedup_key(inbound: InboundMessage) -> tuple[str, str]:
    """The same message delivered twice: same Message-ID (or none) and same bytes."""
    return (inbound.message_id or "", inbound.sha256)


def _lock_id(key: tuple[str, str]) -> int:
    digest = hashlib.sha256(f"{key[0]}|{key[1]}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


async def lock_keys(session: AsyncSession, keys: Iterable[tuple[str, str]]) -> None:
    """Serialises runners over the same message; sorted, so two batches cannot deadlock.

    A statement of its own: the duplicate check that follows must see what a runner that
    held the lock before us committed (READ COMMITTED takes a snapshot per statement)."""
    ids = sorted({_lock_id(k) for k in keys})
    if ids:
        await session.execute(
            text("SELECT pg_advisory_xact_lock(k) FROM (SELECT unnest(CAST(:ids AS bigint[])) AS k ORDER BY 1) s"),
            {"ids": ids},
        )


async def handled_before(
    session: AsyncSession, batch: list[InboundMessage]
) -> dict[tuple[str, str], InboundMessage]:
    """Earlier inbound rows that are already handled, by dedup key."""
    rows = await session.scalars(
        select(InboundMessage).where(
            InboundMessage.sha256.in_({i.sha256 for i in batch}),
            InboundMessage.id.not_in([i.id for i in batch]),
            InboundMessage.status.in_(HANDLED),
        )
    )
    found: dict[tuple[str, str], InboundMessage] = {}
    for row in rows:
        found.setdefault(dedup_key(row), row)
    return found


async def our_message_ids(session: AsyncSession, message_ids: Iterable[str]) -> set[str]:
    wanted = list({m for m in message_ids if m})
    if not wanted:
        return set()
    return set(await session.scalars(
        select(MessageId.message_id).where(
            MessageId.message_id.in_(wanted), MessageId.direction == MessageDirection.outbound
        )
    ))


@dataclass(frozen=True)
class AgentRef:
    id: uuid.UUID
    active: bool
    role: AgentRole


@dataclass
class People:
    # every agent's address, deactivated ones too: their mail must never pass for a customer's
    agents: dict[str, AgentRef] = field(default_factory=dict)
    customers: dict[str, Customer] = field(default_factory=dict)


async def people(session: AsyncSession, senders: dict[str, str], *, customers_for: set[str]) -> People:
    """Agents among `senders` (address -> display name), and customers for the
    addresses in `customers_for`, created (with their organization by domain) if new."""
    found = People()
    if not senders:
        return found
    rows = await session.execute(
        select(Agent.email, Agent.id, Agent.active, Agent.role).where(Agent.email.in_(list(senders)))
    )
    found.agents = {email: AgentRef(agent_id, active, role) for email, agent_id, active, role in rows}
    wanted = sorted(customers_for - set(found.agents))
    if not wanted:
        return found
    found.customers = await _find_or_create_customers(session, wanted, senders)
    for address, customer in found.customers.items():
        if senders.get(address) and not customer.name:
            customer.name = senders[address]
    return found


# the customers of these addresses, those that are new created (with the organization that
# lists their domain: the oldest, if several do) — in one statement where finding, the
# organizations, creating and reading back took four. The organizations are read once for the
# batch, as before. The final SELECT sees the statement's snapshot: rows this statement inserts
# come from RETURNING, and a row another runner committed meanwhile (the INSERT's conflict)
# from neither, so those are read again.
_FIND_OR_CREATE = text(f"""
WITH wanted AS (
    SELECT * FROM unnest(CAST(:ids AS uuid[]), CAST(:emails AS text[]), CAST(:names AS text[]),
                         CAST(:domains AS text[])) AS w(id, email, name, domain)
), orgs AS (
    SELECT DISTINCT ON (d.domain) d.domain, o.id
    FROM {Organization.__tablename__} o CROSS JOIN LATERAL unnest(o.domains) AS d(domain)
    WHERE o.domains && CAST(:domains AS text[]) AND d.domain = ANY(CAST(:domains AS text[]))
    ORDER BY d.domain, o.created_at, o.id
), created AS (
    INSERT INTO {Customer.__tablename__} (id, email, name, organization_id)
    SELECT w.id, w.email, w.name, orgs.id FROM wanted w LEFT JOIN orgs USING (domain)
    WHERE NOT EXISTS (SELECT 1 FROM {Customer.__tablename__} c WHERE c.email = w.email)
    ON CONFLICT (email) DO NOTHING
    RETURNING {Customer.__tablename__}.*
)
SELECT * FROM created
UNION ALL SELECT * FROM {Customer.__tablename__} WHERE email = ANY(CAST(:emails AS text[]))
""")


async def _find_or_create_customers(
    session: AsyncSession, emails: list[str], names: dict[str, str]
) -> dict[str, Customer]:
    rows = await session.scalars(select(Customer).from_statement(_FIND_OR_CREATE), {
        "ids": [uuid.uuid4() for _ in emails], "emails": emails, "names": [names.get(e, "") for e in emails],
        "domains": [e.rpartition("@")[2] for e in emails],
    })
    found = {c.email: c for c in rows}
    if len(found) < len(emails):  # created by another runner since this statement began
        found.update(await _customers(session, [e for e in emails if e not in found]))
    return found


async def _customers(session: AsyncSession, emails: list[str]) -> dict[str, Customer]:
    return {c.email: c for c in await session.scalars(select(Customer).where(Customer.email.in_(emails)))}



