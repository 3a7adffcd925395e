"""One SLA warning per target (first reply, next reply, resolution), by two schedulers at once;
the SLA totals on /metrics."""

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
from tests.support.gateway import Running


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


def sla_lines(text: str) -> dict[tuple[str, str], float]:
    """`helpdesk_sla_targets_total` and `_active` samples: (metric, outcome) -> value."""
    found = {}
    for line in text.splitlines():
        if line.startswith(("helpdesk_sla_targets_total{", "helpdesk_sla_targets_active{")):
            labels, value = line.rsplit(" ", 1)
            pairs = dict(p.split("=", 1) for p in labels[labels.index("{") + 1:-1].split(","))
            outcome = pairs.get("outcome", '"active"').strip('"')
            found[(pairs["metric"].strip('"'), outcome)] = float(value)
    return found


async def test_metrics_count_what_compliance_counts(gateway: Running) -> None:
    """The Prometheus totals are the compliance figures over all time, after a breach too."""
    async with gateway.http() as client:
        async def both() -> tuple[dict, dict]:
            metrics = sla_lines(await (await client.get("/metrics")).text())
            body = await (await client.get("/api/v1/sla/compliance", params={"from": "1970-01-02", "to": "9998-01-01"})).json()
            expected = {
                (metric, outcome): float(figures[outcome])
                for metric, figures in body["metrics"].items() for outcome in ("achieved", "breached", "active")
            }
            return metrics, expected

        ticket = await (await client.post("/api/v1/tickets", json={
            "subject": "metrics", "description": "d", "requester": {"email": f"m-{uuid.uuid4().hex[:6]}@customer.test"},
        })).json()
        async with gateway.db.unit_of_work() as session:
            session.add(TicketSlaTarget(
                ticket_id=uuid.UUID(ticket["id"]), metric="next_reply_time", minutes=5,
                started_at=utcnow() - timedelta(minutes=10), target_at=utcnow() - timedelta(minutes=5),
            ))
        metrics, expected = await both()
        assert metrics == expected and metrics[("next_reply_time", "active")] >= 1
        breached = metrics[("next_reply_time", "breached")]
        jobs = Jobs(Database(gateway.db.url, pool_size=2), gateway.gateway.settings, Metrics())
        try:
            await jobs.run("sla_breaches")
        finally:
            await jobs.db.dispose()
        metrics, expected = await both()
        assert metrics == expected and metrics[("next_reply_time", "breached")] == breached + 1
