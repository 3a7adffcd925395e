"""GET /api/v1/tickets/statistics at 200,000 tickets (the issue's target: under 200 ms).

    .venv/bin/python bench/ticket_statistics.py [--tickets 200000] [--requests 30]

Starts an embedded PostgreSQL and an in-process gateway (the test suite's helpers), loads the
tickets with SQL (spread over the last ~280 days, a quarter of them solved, three quarters
answered, a fifth under a first-reply SLA), then times sequential requests covering all of
them. Baseline in the same run: one `count(*)` over the same tickets on a bare asyncpg
connection (the scan no statistics can avoid).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from core.db import asyncpg_dsn  # noqa: E402
from core.migrate import upgrade  # noqa: E402
from tests.support.gateway import make_settings, running_gateway  # noqa: E402
from tests.support.postgres import create_database, postgres_server  # noqa: E402

SINCE = datetime.now(UTC) - timedelta(days=300)  # the window: every ticket loaded
LOAD = [
    """INSERT INTO customers (id, name, email, created_at, updated_at)
       SELECT gen_random_uuid(), 'Customer ' || g, 'customer' || g || '@stats-bench.example', now(), now()
       FROM generate_series(1, $1::int) g""",
    """WITH c AS (SELECT array_agg(id) AS ids FROM customers WHERE email LIKE '%@stats-bench.example')
       INSERT INTO tickets (id, number, subject, description, status, priority, channel, requester_id,
                            tags, custom_fields, first_response_at, solved_at, sla_breach_at, created_at, updated_at)
       SELECT gen_random_uuid(), nextval('ticket_number_seq'), 'Case ' || g, '',
              (ARRAY['new','open','pending','solved'])[1 + g % 4]::ticket_status,
              (ARRAY['low','normal','normal','high','urgent'])[1 + g % 5]::ticket_priority,
              (ARRAY['email','api','web','phone'])[1 + g % 4]::ticket_channel,
              c.ids[1 + g % array_length(c.ids, 1)], '{}', '{}',
              CASE WHEN g % 4 <> 0 THEN t.ts + (g % 90) * interval '1 minute' END,
              CASE WHEN g % 4 = 3 THEN t.ts + (g % 48) * interval '1 hour' END,
              CASE WHEN g % 5 = 0 THEN t.ts + interval '1 hour' END,
              t.ts, t.ts
       FROM generate_series(1, $1::int) g CROSS JOIN c
       CROSS JOIN LATERAL (SELECT now() - ($1::int - g) * interval '2 minutes' AS ts) t""",
]


async def bench(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp, postgres_server(Path(tmp) / "pg") as server:
        url = await create_database(server)
        await upgrade(url)
        db = await asyncpg.connect(asyncpg_dsn(url))
        started = time.perf_counter()
        await db.execute(LOAD[0], max(1, args.tickets // 10))
        await db.execute(LOAD[1], args.tickets)
        await db.execute("VACUUM ANALYZE tickets")
        print(f"loaded {args.tickets:,} tickets in {time.perf_counter() - started:.1f} s")
        window = {"from": SINCE.isoformat()}
        # the API alone: the scheduler's jobs (closing 50,000 solved tickets) would run alongside
        async with running_gateway(make_settings(url, Path(tmp) / "data", roles="api")) as gw:
            async with gw.http() as client:
                first = await (await client.get("/api/v1/tickets/statistics", params=window)).json()
                counted = sum(first["by_status"].values())
                print(f"covering {counted:,} tickets; sla {first['sla']}")
                timings, bare = [], []
                for _ in range(args.requests):
                    t0 = time.perf_counter()
                    response = await client.get("/api/v1/tickets/statistics", params=window)
                    await response.read()
                    timings.append((time.perf_counter() - t0) * 1000)
                    assert response.status == 200
                    t0 = time.perf_counter()
                    await db.fetchval("SELECT count(*) FROM tickets WHERE deleted_at IS NULL AND created_at >= $1",
                                      SINCE)
                    bare.append((time.perf_counter() - t0) * 1000)
        await db.close()
    timings.sort()
    p95 = timings[int(0.95 * (len(timings) - 1))]
    print(f"statistics over HTTP: median {statistics.median(timings):.1f} ms, p95 {p95:.1f} ms, "
          f"max {timings[-1]:.1f} ms ({len(timings)} requests); target < 200 ms")
    print(f"baseline, bare count(*) of the same tickets: median {statistics.median(bare):.1f} ms "
          f"(statistics = {statistics.median(timings) / statistics.median(bare):.1f}x)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=200_000)
    parser.add_argument("--requests", type=int, default=30)
    asyncio.run(bench(parser.parse_args()))


if __name__ == "__main__":
    main()
