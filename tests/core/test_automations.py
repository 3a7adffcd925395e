"""Automations end to end: tickets by SMTP, the automation by HTTP, two schedulers at once."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

from sqlalchemy import func, select, update

from core.audit.models import TicketAuditLog
from core.automations.models import automation_marks
from core.clock import utcnow
from core.db import Database
from core.jobs.scheduler import Jobs
from core.metrics import Metrics
from core.tickets.models import Ticket
from tests.gateway.test_conversations import deliver, email
from tests.support.gateway import Running


async def acted(db: Database, ticket_id: uuid.UUID) -> int:
    async with db.unit_of_work() as session:
        return await session.scalar(select(func.count()).select_from(TicketAuditLog).where(
            TicketAuditLog.ticket_id == ticket_id, TicketAuditLog.action == "automation",
        )) or 0


async def age(db: Database, ticket_id: uuid.UUID, hours: float) -> None:
    async with db.unit_of_work() as session:
        await session.execute(update(Ticket).where(Ticket.id == ticket_id).values(
            created_at=utcnow() - timedelta(hours=hours)))


async def test_automations_act_once_per_ticket_with_two_schedulers(gateway: Running) -> None:
    tok = f"a{uuid.uuid4().hex[:10]}"
    async with gateway.http() as client:
        response = await client.post("/api/v1/automations", json={
            "title": "Stale tickets", "conditions": {"all": [
                {"field": "subject", "operator": "contains", "value": tok},
                {"field": "hours_since_created", "operator": "greater_than", "value": 2.5},
                {"field": "status", "operator": "is_not", "value": "solved"},
            ]},
            "actions": [{"field": "add_tags", "value": ["stale"]}, {"field": "priority", "value": "high"},
                        {"field": "comment", "value": "Escalated: no answer for a while.", "public": False}],
        })
        assert response.status == 201, await response.text()
        automation = await response.json()
        bad = await client.post("/api/v1/automations", json={
            "title": "bad", "conditions": {"all": [{"field": "hours_since_created", "operator": "contains", "value": "x"}]},
            "actions": [{"field": "status", "value": "open"}],
        })
        assert bad.status == 422
    try:
        ids = []
        for n in range(6):
            raw, _ = email(f"c{n}@customer.test", f"Printer {tok} #{n}", "It jams.")
            ids.append((await deliver(gateway, raw)).ticket_id)
        for ticket_id in ids[:5]:
            await age(gateway.db, ticket_id, 3)
        schedulers = [Jobs(Database(gateway.db.url, pool_size=3), gateway.gateway.settings, Metrics()) for _ in range(2)]
        await asyncio.gather(*(s.run("automations") for s in schedulers))
        assert [await acted(gateway.db, t) for t in ids] == [1, 1, 1, 1, 1, 0]
        async with gateway.http() as client:
            first = await (await client.get(f"/api/v1/tickets/{ids[0]}")).json()
            assert "stale" in first["tags"] and first["priority"] == "high"
            comments = (await (await client.get(f"/api/v1/tickets/{ids[0]}/comments")).json())["comments"]
            assert comments[-1]["body"] == "Escalated: no answer for a while." and comments[-1]["visibility"] == "internal"
        # conditions still hold: nothing more
        await asyncio.gather(*(s.run("automations") for s in schedulers))
        assert [await acted(gateway.db, t) for t in ids] == [1, 1, 1, 1, 1, 0]
        # false (younger), then true again: it acts once more
        await age(gateway.db, ids[0], 1)
        await schedulers[0].run("automations")
        async with gateway.db.unit_of_work() as session:
            assert await session.scalar(select(func.count()).select_from(automation_marks).where(
                automation_marks.c.ticket_id == ids[0])) == 0
        await age(gateway.db, ids[0], 3)
        await schedulers[1].run("automations")
        assert await acted(gateway.db, ids[0]) == 2
        for scheduler in schedulers:
            await scheduler.db.dispose()
    finally:
        async with gateway.http() as client:
            await client.delete(f"/api/v1/automations/{automation['id']}")
