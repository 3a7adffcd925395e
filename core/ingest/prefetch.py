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
from core.db import driver_of
from core.enums import AgentRole, InboundStatus, MessageDirection
from core.ingest.models import InboundMessage
from core.organizations.models import Organization
from core.tickets.models import MessageId

HANDLED = (InboundStatus.processed, InboundStatus.quarantined, InboundStatus.dropped)


def dedup_key(inbound: InboundMessage | Handled) -> tuple[str, str]:
    """The same message delivered twice: same Message-ID (or none) and same bytes."""
    return (inbound.message_id or "", inbound.sha256)


def _lock_id(key: tuple[str, str]) -> int:
    digest = hashlib.sha256(f"{key[0]}|{key[1]}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


_LOCK_KEYS = "SELECT pg_advisory_xact_lock(k) FROM (SELECT unnest($1::bigint[]) AS k ORDER BY 1) s"


async def lock_keys(session: AsyncSession, keys: Iterable[tuple[str, str]]) -> None:
    """Serialises runners over the same message; sorted, so two batches cannot deadlock.

    A statement of its own: the duplicate check that follows must see what a runner that
    held the lock before us committed (READ COMMITTED takes a snapshot per statement)."""
    ids = sorted({_lock_id(k) for k in keys})
    if ids:
        async with driver_of(session) as driver:
            await driver.execute(_LOCK_KEYS, ids)


@dataclass(frozen=True)
class Handled:
    """An earlier inbound row, already handled: what a duplicate of it points at."""
    id: uuid.UUID
    message_id: str | None
    sha256: str
    ticket_id: uuid.UUID | None
    comment_id: uuid.UUID | None


_HANDLED_COLUMNS = "m.id, m.message_id, m.sha256, m.ticket_id, m.comment_id, m.received_at"
_HANDLED_WHERE = (f"m.status = ANY('{{{','.join(s.value for s in HANDLED)}}}'::inbound_status[]) "
                  "AND m.id <> ALL($3::uuid[])")
# By the whole dedup key, so both halves use the (message_id, sha256) index: an inbound table
# only ever grows, and by the digest alone the check read all of it for every batch (40 ms
# at 200,000 messages). Mail without a Message-ID needs the IS NULL form to use the index.
HANDLED_BEFORE = f"""
WITH k AS (SELECT * FROM unnest($1::text[], $2::varchar[]) AS k(message_id, sha256))
SELECT {_HANDLED_COLUMNS} FROM k
JOIN {InboundMessage.__tablename__} m ON m.message_id = k.message_id AND m.sha256 = k.sha256
WHERE {_HANDLED_WHERE}
UNION ALL
SELECT {_HANDLED_COLUMNS} FROM k
JOIN {InboundMessage.__tablename__} m ON m.message_id IS NULL AND m.sha256 = k.sha256
WHERE k.message_id = '' AND {_HANDLED_WHERE}
ORDER BY received_at
"""


async def handled_before(session: AsyncSession, batch: list[InboundMessage]) -> dict[tuple[str, str], Handled]:
    """Earlier inbound rows that are already handled, by dedup key (the earliest of each)."""
    keys = sorted({dedup_key(i) for i in batch})
    async with driver_of(session) as driver:
        rows = await driver.fetch(
            HANDLED_BEFORE, [k[0] for k in keys], [k[1] for k in keys], [i.id for i in batch]
        )
    found: dict[tuple[str, str], Handled] = {}
    for row in rows:
        earlier = Handled(row["id"], row["message_id"], row["sha256"], row["ticket_id"], row["comment_id"])
        found.setdefault(dedup_key(earlier), earlier)
    return found


_OURS = (f"SELECT message_id FROM {MessageId.__tablename__} WHERE message_id = ANY($1::text[])"
         f" AND direction = '{MessageDirection.outbound.value}'")


async def our_message_ids(session: AsyncSession, message_ids: Iterable[str]) -> set[str]:
    wanted = list({m for m in message_ids if m})
    if not wanted:
        return set()
    async with driver_of(session) as driver:
        return {row[0] for row in await driver.fetch(_OURS, wanted)}


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


_AGENTS = f"SELECT email, id, active, role::text FROM {Agent.__tablename__} WHERE email = ANY($1::text[])"


async def people(session: AsyncSession, senders: dict[str, str], *, customers_for: set[str]) -> People:
    """Agents among `senders` (address -> display name), and customers for the
    addresses in `customers_for`, created (with their organization by domain) if new."""
    found = People()
    if not senders:
        return found
    async with driver_of(session) as driver:
        rows = await driver.fetch(_AGENTS, list(senders))
    found.agents = {email: AgentRef(agent_id, active, AgentRole(role)) for email, agent_id, active, role in rows}
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



