"""The batch's senders as agents and customers (core/ingest/prefetch.py `people`): found,
or created with their organization, in one statement, and right when another runner creates
the same customer at the same moment."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
from sqlalchemy import text

from core.db import Database, asyncpg_dsn
from core.ingest.prefetch import people


async def test_new_customers_get_their_organization_and_known_ones_are_found(db: Database) -> None:
    tag = uuid.uuid4().hex[:8]
    domain = f"acme-{tag}.example"
    async with db.unit_of_work() as session:
        organization = uuid.uuid4()
        await session.execute(
            text("INSERT INTO organizations (id, name, domains) VALUES (:id, :name, :domains)"),
            {"id": organization, "name": f"Acme {tag}", "domains": [domain]},
        )
    known, new, other = f"known-{tag}@{domain}", f"new-{tag}@{domain}", f"other-{tag}@elsewhere.example"
    async with db.unit_of_work() as session:
        first = await people(session, {known: "Known"}, customers_for={known})
    async with db.unit_of_work() as session:
        found = await people(session, {known: "", new: "New Person", other: ""}, customers_for={known, new, other})
    assert set(found.customers) == {known, new, other}
    assert found.customers[known].id == first.customers[known].id
    assert found.customers[known].name == "Known"
    assert found.customers[new].name == "New Person"
    assert found.customers[new].organization_id == organization == found.customers[known].organization_id
    assert found.customers[other].organization_id is None


async def test_a_customer_created_meanwhile_by_another_runner_is_found(db: Database, database_url: str) -> None:
    """The other runner's row is not yet committed when ours starts: our INSERT waits for it,
    then does nothing, and our statement's snapshot does not see it either."""
    address = f"race-{uuid.uuid4().hex[:8]}@customer.test"
    theirs = uuid.uuid4()
    other = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await other.execute("BEGIN")
        await other.execute("INSERT INTO customers (id, email, name) VALUES ($1, $2, 'Theirs')", theirs, address)

        async def ours() -> uuid.UUID:
            async with db.unit_of_work() as session:
                found = await people(session, {address: "Ours"}, customers_for={address})
                return found.customers[address].id

        task = asyncio.create_task(ours())
        for _ in range(200):  # our INSERT waits on their row
            if await other.fetchval("SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype = 'transactionid'"):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("our statement never waited for theirs")
        await other.execute("COMMIT")
        assert await asyncio.wait_for(task, 30) == theirs
    finally:
        await other.close()
