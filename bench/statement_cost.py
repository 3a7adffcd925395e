"""What one small read costs this process through SQLAlchemy (ORM select, Core text) and on the
asyncpg driver of the same connection: the reason the hot paths send their plain reads on the
driver (`core.db.driver_of`). Python CPU per statement, in the source tree of the working
directory, against a fresh embedded PostgreSQL.

    .venv/bin/python bench/statement_cost.py [-n 500]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, os.getcwd())

from sqlalchemy import func, select, text  # noqa: E402

from core.customers.models import Customer  # noqa: E402
from core.db import Database, driver_of  # noqa: E402
from core.events import OutboundDelivery  # noqa: E402
from core.migrate import upgrade  # noqa: E402
from core.tickets.models import Ticket  # noqa: E402
from tests.support.postgres import create_database, postgres_server  # noqa: E402


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp, postgres_server(Path(tmp) / "pg") as server:
        url = await create_database(server)
        await upgrade(url)
        db = Database(url, pool_size=2)
        addresses = [f"c{i}@customer.test" for i in range(10)]
        ids = [uuid.uuid4() for _ in range(10)]
        since = datetime.now(UTC) - timedelta(hours=1)
        cases: list[tuple[str, Callable[[Any], Awaitable[object]]]] = [
            ("ORM: count per recipient", lambda s: s.execute(
                select(OutboundDelivery.recipient, func.count()).where(
                    OutboundDelivery.recipient.in_(addresses), OutboundDelivery.created_at >= since,
                ).group_by(OutboundDelivery.recipient))),
            ("ORM: customers by id", lambda s: s.scalars(select(Customer).where(Customer.id.in_(ids)))),
            ("ORM: live tickets by id", lambda s: s.scalars(
                select(Ticket.id).where(Ticket.id.in_(ids), Ticket.deleted_at.is_(None)))),
            ("Core text: advisory locks", lambda s: s.execute(
                text("SELECT pg_advisory_xact_lock(k) FROM unnest(CAST(:keys AS bigint[])) AS k ORDER BY k"),
                {"keys": list(range(10))})),
        ]
        async with db.unit_of_work() as session:
            for label, run in cases:
                for _ in range(50):
                    (await run(session)).all()  # type: ignore[attr-defined]
                cpu = time.thread_time()
                for _ in range(args.n):
                    (await run(session)).all()  # type: ignore[attr-defined]
                print(f"{label:<28} {(time.thread_time() - cpu) / args.n * 1e6:6.0f} µs")
            async with driver_of(session) as driver:
                plain = [
                    ("driver: count per recipient", lambda: driver.fetch(
                        f"SELECT recipient, count(*) FROM {OutboundDelivery.__tablename__}"
                        " WHERE recipient = ANY($1::text[]) AND created_at >= $2 GROUP BY recipient", addresses, since)),
                    ("driver: live tickets by id", lambda: driver.fetch(
                        f"SELECT id FROM {Ticket.__tablename__} WHERE id = ANY($1::uuid[]) AND deleted_at IS NULL", ids)),
                    ("driver: advisory locks", lambda: driver.execute(
                        "SELECT pg_advisory_xact_lock(k) FROM unnest($1::bigint[]) AS k ORDER BY k", list(range(10)))),
                ]
                for label, call in plain:
                    for _ in range(50):
                        await call()
                    cpu = time.thread_time()
                    for _ in range(args.n):
                        await call()
                    print(f"{label:<28} {(time.thread_time() - cpu) / args.n * 1e6:6.0f} µs")
        await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=500, help="statements of each kind")
    asyncio.run(main(parser.parse_args()))
