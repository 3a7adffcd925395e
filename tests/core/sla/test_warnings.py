"""One SLA warning per target (first reply, next reply, resolution), by two schedulers at once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path

from sqlalchemy import select, update

from core.clock import utcnow
from core.db import Database
from core.events import TOPIC_SLA_WARNING, OutboxEvent
from core.jobs.scheduler import Jobs
from core.metrics import Metrics
from core.sla.models import TicketSlaTarget
from tests.core.test_jobs import settings, unanswered


async def warnings_of(db: Database, ticket_id: uuid.UUID) -> list[str]:
    async with db.unit_of_work() as session:
        return sorted(e.payload["metric"] for e in await session.scalars(select(OutboxEvent).where(
            OutboxEvent.key == str(ticket_id), OutboxEvent.topic == TOPIC_SLA_WARNING)))


async def test_each_target_is_warned_once(db: Database, database_url: str, tmp_path: Path) -> None:
    ticket_id = await unanswered(db, priority="normal", minutes_ago=50)
    now = utcnow()
    due = {  # metric: (minutes from now, fulfilled)
        "first_reply_time": (10, False), "next_reply_time": (20, False), "resolution_time": (480, False),
    }
    async with db.unit_of_work() as session:
        for metric, (minutes, _) in due.items():
            session.add(TicketSlaTarget(
                ticket_id=ticket_id, metric=metric, minutes=60, started_at=now - timedelta(minutes=50),
                target_at=now + timedelta(minutes=minutes),
            ))
        session.add(TicketSlaTarget(  # met already: never warned
            ticket_id=ticket_id, metric="next_reply_time", minutes=60, started_at=now - timedelta(hours=3),
            target_at=now + timedelta(minutes=5), fulfilled_at=now - timedelta(hours=1),
        ))
    schedulers = [Jobs(Database(db.url, pool_size=2), settings(database_url, tmp_path, sla_warning_minutes=30), Metrics())
                  for _ in range(2)]
    try:
        await asyncio.gather(*(s.run("sla_warnings") for s in schedulers))
        assert await warnings_of(db, ticket_id) == ["first_reply_time", "next_reply_time"]
        await asyncio.gather(*(s.run("sla_warnings") for s in schedulers))  # nobody twice
        assert await warnings_of(db, ticket_id) == ["first_reply_time", "next_reply_time"]
        async with db.unit_of_work() as session:  # the resolution target comes close, later
            await session.execute(update(TicketSlaTarget).where(
                TicketSlaTarget.ticket_id == ticket_id, TicketSlaTarget.metric == "resolution_time",
            ).values(target_at=utcnow() + timedelta(minutes=15)))
        await asyncio.gather(*(s.run("sla_warnings") for s in schedulers))
        assert await warnings_of(db, ticket_id) == ["first_reply_time", "next_reply_time", "resolution_time"]
    finally:
        for scheduler in schedulers:
            await scheduler.db.dispose()
