"""Desk statistics, computed by PostgreSQL: four statements side by side, no ticket rows in Python.

The tickets counted are those created in [from, to) (optionally of one group); `solved_per_day`
counts the tickets solved in that window, whenever they were created. SLA compliance is that of
`GET /sla/compliance` for the targets started in the window.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Any

from core.db import Database, driver_of
from core.sla.targets import compliance

_WINDOW = (
    "deleted_at IS NULL AND created_at >= $1 AND created_at < $2 AND ($3::uuid IS NULL OR group_id = $3)"
)
# one scan into the (few thousand) combinations of status, priority, channel, group and day,
# with the satisfaction counts, then each breakdown from those: far cheaper than grouping sets
# over every ticket. The extended statistics `st_tickets_breakdown` (migration 0011) tell the
# planner how few combinations there are, so it hashes them instead of sorting every ticket.
_COUNTS = f"""
WITH g AS MATERIALIZED (
  SELECT status, priority, channel, group_id, (created_at AT TIME ZONE 'UTC')::date AS day, count(*) AS n,
         count(*) FILTER (WHERE satisfaction_score = 'good') AS good,
         count(*) FILTER (WHERE satisfaction_score = 'bad') AS bad
  FROM tickets WHERE {_WINDOW} GROUP BY 1, 2, 3, 4, 5
)
SELECT GROUPING(status) = 0 AS by_status, GROUPING(priority) = 0 AS by_priority,
       GROUPING(channel) = 0 AS by_channel, GROUPING(group_id) = 0 AS by_group,
       status::text, priority::text, channel::text, group_id::text, day::text, sum(n)::bigint AS count,
       sum(good)::bigint AS good, sum(bad)::bigint AS bad
FROM g GROUP BY GROUPING SETS ((status), (priority), (channel), (group_id), (day))
"""
# the percentiles, over the answered or solved tickets only, each from one sort of seconds as
# float8 (`extract` would make a numeric of every row; minutes are taken from the results)
_TIMES = f"""
SELECT
  percentile_cont('{{0.5,0.9}}'::float8[]) WITHIN GROUP (ORDER BY date_part('epoch', first_response_at - created_at))
    FILTER (WHERE first_response_at IS NOT NULL),
  percentile_cont('{{0.5,0.9}}'::float8[]) WITHIN GROUP (ORDER BY date_part('epoch', solved_at - created_at))
    FILTER (WHERE solved_at IS NOT NULL)
FROM tickets WHERE {_WINDOW} AND (first_response_at IS NOT NULL OR solved_at IS NOT NULL)
"""
# an index-only scan of `ix_tickets_solved_day` (migration 0011)
_SOLVED = """
SELECT ((solved_at AT TIME ZONE 'UTC')::date)::text, count(*)
FROM tickets
WHERE deleted_at IS NULL AND solved_at >= $1 AND solved_at < $2 AND ($3::uuid IS NULL OR group_id = $3)
GROUP BY 1 ORDER BY 1
"""
# a plan for these very values, every time: a generic plan (which a prepared statement gets
# after five runs) cannot know the window covers most tickets, estimates a handful of rows
# and sorts all of them (3-5x slower); memory enough to hash and sort without temporary files
_PLANNING = "SET LOCAL plan_cache_mode = force_custom_plan; SET LOCAL work_mem = '32MB'"


def _minutes(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds / 60, 1)


async def ticket_statistics(
    db: Database, *, start: datetime, end: datetime, group_id: uuid.UUID | None = None
) -> dict[str, Any]:
    """The four statements run side by side, each on a read connection of its own (PostgreSQL
    works on them in parallel; one after the other they took twice as long)."""
    args = (start, end, group_id)

    async def fetch(sql: str) -> list[Any]:
        async with db.read_only() as session, driver_of(session) as connection, connection.transaction(readonly=True):
            await connection.execute(_PLANNING)
            return list(await connection.fetch(sql, *args))

    async def sla() -> dict[str, dict[str, Any]]:
        async with db.read_only() as session, driver_of(session) as connection, connection.transaction(readonly=True):
            await connection.execute(_PLANNING)
            return await compliance(session, start=start, end=end, group_id=group_id)

    counts, [times], solved, met = await asyncio.gather(fetch(_COUNTS), fetch(_TIMES), fetch(_SOLVED), sla())
    result: dict[str, Any] = {
        "by_status": {}, "by_priority": {}, "by_channel": {}, "by_group": {}, "created_per_day": {},
    }
    for row in counts:
        if row["by_status"]:
            result["by_status"][row["status"]] = row["count"]
        elif row["by_priority"]:
            result["by_priority"][row["priority"]] = row["count"]
        elif row["by_channel"]:
            result["by_channel"][row["channel"]] = row["count"]
        elif row["by_group"]:
            result["by_group"][row["group_id"] or "none"] = row["count"]
        else:
            result["created_per_day"][row["day"]] = row["count"]
    result["created_per_day"] = dict(sorted(result["created_per_day"].items()))
    result["solved_per_day"] = {day: n for day, n in solved}
    first_reply, resolution = times[0] or [None, None], times[1] or [None, None]
    good = sum(row["good"] for row in counts if row["by_status"])
    bad = sum(row["bad"] for row in counts if row["by_status"])
    result.update({
        "first_reply_minutes": {"median": _minutes(first_reply[0]), "p90": _minutes(first_reply[1])},
        "resolution_minutes": {"median": _minutes(resolution[0]), "p90": _minutes(resolution[1])},
        "sla": met,
        "satisfaction": {
            "good": good, "bad": bad, "percent_good": round(100 * good / (good + bad), 1) if good + bad else None,
        },
    })
    return result
