"""GET /tickets/statistics over HTTP, on tickets of a group of the test's own."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, update

from core.sla.models import TicketSlaTarget
from core.tickets.models import Ticket
from tests.gateway.api.test_tickets import create
from tests.support.gateway import Running


async def test_statistics_of_one_group(gateway: Running) -> None:
    async with gateway.http() as client:
        group = (await (await client.post("/api/v1/groups", json={"name": f"Stats {uuid.uuid4().hex[:8]}"})).json())["id"]
        tickets = [await create(client, group_id=group, priority=p) for p in ("low", "high", "high", "urgent")]
        first, second = tickets[0], tickets[1]
        # an answer after 30 minutes and a solution after 2 hours (times set in the database)
        now = datetime.now(UTC)
        async with gateway.db.unit_of_work() as session:
            await session.execute(update(Ticket).where(Ticket.id == uuid.UUID(first["id"])).values(
                created_at=now - timedelta(hours=3), first_response_at=now - timedelta(hours=2, minutes=30),
                solved_at=now - timedelta(hours=1), status="solved", satisfaction_score="good",
                satisfaction_rated_at=now,
            ))
            # one first-reply target met, one missed (as the SLA code and the breach job leave them);
            # only these: policies other tests left active may have given the tickets targets too
            await session.execute(delete(TicketSlaTarget).where(
                TicketSlaTarget.ticket_id.in_([uuid.UUID(t["id"]) for t in tickets])))
            for ticket, breached in ((first, None), (second, now - timedelta(minutes=1))):
                session.add(TicketSlaTarget(
                    id=uuid.uuid4(), ticket_id=uuid.UUID(ticket["id"]), metric="first_reply_time", minutes=60,
                    started_at=now - timedelta(hours=2), target_at=now - timedelta(hours=1),
                    fulfilled_at=None if breached else now - timedelta(hours=1, minutes=30), breached_at=breached,
                ))
        response = await client.get("/api/v1/tickets/statistics", params={"group_id": group})
        assert response.status == 200, await response.text()
        stats = await response.json()
        assert stats["by_status"] == {"new": 3, "solved": 1}
        assert stats["by_priority"] == {"low": 1, "high": 2, "urgent": 1}
        assert stats["by_channel"] == {"api": 4} and stats["by_group"] == {group: 4}
        assert sum(stats["created_per_day"].values()) == 4
        assert sum(stats["solved_per_day"].values()) == 1
        assert stats["first_reply_minutes"] == {"median": 30.0, "p90": 30.0}
        assert stats["resolution_minutes"] == {"median": 120.0, "p90": 120.0}
        assert stats["sla"]["first_reply_time"] == {"achieved": 1, "breached": 1, "active": 0, "percent_achieved": 50.0}
        assert stats["satisfaction"] == {"good": 1, "bad": 0, "percent_good": 100.0}
        earlier = await client.get("/api/v1/tickets/statistics", params={
            "group_id": group, "from": "2020-01-01", "to": "2020-02-01",
        })
        assert (await earlier.json())["by_status"] == {}
        for bad in ({"from": "yesterday"}, {"from": "2026-01-02", "to": "2026-01-01"}, {"group_id": "x"}):
            assert (await client.get("/api/v1/tickets/statistics", params=bad)).status == 422
