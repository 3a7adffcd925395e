"""Triggers on what happens to a ticket besides changes: an SLA target breached (two schedulers
at once), the requester's satisfaction rating (over the survey page)."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from core.audit.models import TicketAuditLog
from core.clock import utcnow
from core.db import Database
from core.jobs.scheduler import Jobs
from core.metrics import Metrics
from core.satisfaction.tokens import survey_token
from core.secrets import REPLY_TOKEN_SECRET, server_secret
from core.sla.models import TicketSlaTarget
from core.tickets.models import Ticket
from core.triggers.conditions import Facts, matches
from core.triggers.schemas import Conditions
from tests.support.gateway import Running


def test_conditions_on_breaches_and_ratings() -> None:
    breached = Conditions.model_validate({"all": [
        {"field": "event", "operator": "is", "value": "sla_breached"},
        {"field": "sla_metric", "operator": "is", "value": "resolution_time"},
    ]})
    facts = Facts(event="sla_breached", ticket={}, sla_metric="resolution_time")
    assert matches(breached, facts)
    assert not matches(breached, Facts(event="sla_breached", ticket={}, sla_metric="first_reply_time"))
    assert not matches(breached, Facts(event="updated", ticket={}))
    unhappy = Conditions.model_validate({"all": [{"field": "satisfaction_score", "operator": "is", "value": "bad"}]})
    assert matches(unhappy, Facts(event="satisfaction_rated", ticket={}, satisfaction_score="bad"))
    assert not matches(unhappy, Facts(event="satisfaction_rated", ticket={}, satisfaction_score="good"))
    for wrong in ({"field": "sla_metric", "operator": "is", "value": "lunch_time"},
                  {"field": "satisfaction_score", "operator": "is", "value": "meh"},
                  {"field": "sla_metric", "operator": "changed"}):
        with pytest.raises(ValueError):
            Conditions.model_validate({"all": [wrong]})


async def _trigger(client, title: str, conditions: list[dict], actions: list[dict]) -> str:  # type: ignore[no-untyped-def]
    response = await client.post("/api/v1/triggers", json={"title": title, "conditions": {"all": conditions}, "actions": actions})
    assert response.status == 201, await response.text()
    return (await response.json())["id"]


async def _fired(gateway: Running, ticket_id: str) -> list[str]:
    async with gateway.db.unit_of_work() as session:
        return [a.changes["trigger"]["title"] for a in await session.scalars(
            select(TicketAuditLog).where(TicketAuditLog.ticket_id == uuid.UUID(ticket_id), TicketAuditLog.action == "trigger")
            .order_by(TicketAuditLog.created_at)
        )]


async def test_a_breach_fires_the_triggers_of_its_metric_once(gateway: Running) -> None:
    tok = uuid.uuid4().hex[:8]
    async with gateway.http() as client:
        ids = [
            await _trigger(client, f"escalate {tok}", [
                {"field": "event", "operator": "is", "value": "sla_breached"},
                {"field": "sla_metric", "operator": "is", "value": "first_reply_time"},
                {"field": "subject", "operator": "contains", "value": tok},
            ], [{"field": "priority", "value": "urgent"}, {"field": "add_tags", "value": ["breached"]}]),
            await _trigger(client, f"other metric {tok}", [
                {"field": "event", "operator": "is", "value": "sla_breached"},
                {"field": "sla_metric", "operator": "is", "value": "resolution_time"},
                {"field": "subject", "operator": "contains", "value": tok},
            ], [{"field": "add_tags", "value": ["wrong"]}]),
        ]
        try:
            ticket = await (await client.post("/api/v1/tickets", json={
                "subject": f"slow {tok}", "description": "hello", "requester": {"email": f"r-{tok}@customer.test"},
            })).json()
            async with gateway.db.unit_of_work() as session:
                session.add(TicketSlaTarget(
                    ticket_id=uuid.UUID(ticket["id"]), metric="first_reply_time", minutes=60,
                    started_at=utcnow() - timedelta(hours=2), target_at=utcnow() - timedelta(hours=1),
                ))
                session.add(TicketSlaTarget(  # not due yet: no breach, no trigger
                    ticket_id=uuid.UUID(ticket["id"]), metric="resolution_time", minutes=600,
                    started_at=utcnow() - timedelta(hours=2), target_at=utcnow() + timedelta(hours=8),
                ))
            schedulers = [Jobs(Database(gateway.db.url, pool_size=2), gateway.gateway.settings, Metrics()) for _ in range(2)]
            await asyncio.gather(*(s.run("sla_breaches") for s in schedulers))
            for scheduler in schedulers:
                await scheduler.db.dispose()
            after = await (await client.get(f"/api/v1/tickets/{ticket['id']}")).json()
            assert after["priority"] == "urgent" and after["tags"] == ["breached"]
            assert [t for t in await _fired(gateway, ticket["id"]) if tok in t] == [f"escalate {tok}"]
        finally:
            for ident in ids:
                await client.delete(f"/api/v1/triggers/{ident}")


async def test_a_rating_fires_the_triggers_of_its_score(gateway: Running) -> None:
    tok = uuid.uuid4().hex[:8]
    async with gateway.http() as client:
        ident = await _trigger(client, f"unhappy {tok}", [
            {"field": "event", "operator": "is", "value": "satisfaction_rated"},
            {"field": "satisfaction_score", "operator": "is", "value": "bad"},
            {"field": "subject", "operator": "contains", "value": tok},
        ], [{"field": "add_tags", "value": ["unhappy"]},
            {"field": "comment", "value": "Rated bad: call them.", "public": False}])
        try:
            ticket = await (await client.post("/api/v1/tickets", json={
                "subject": f"rated {tok}", "description": "hello", "requester": {"email": f"r-{tok}@customer.test"},
            })).json()
            assert (await client.put(f"/api/v1/tickets/{ticket['id']}", json={"status": "solved"})).status == 200
            async with gateway.db.unit_of_work() as session:
                await session.execute(update(Ticket).where(Ticket.id == uuid.UUID(ticket["id"]))
                                      .values(satisfaction_sent_at=utcnow()))
                secret = await server_secret(session, REPLY_TOKEN_SECRET)
            path = f"/satisfaction/{survey_token(secret, uuid.UUID(ticket['id']))}"
            assert (await client.post(path, data={"score": "good"})).status == 200
            assert "unhappy" not in (await (await client.get(f"/api/v1/tickets/{ticket['id']}")).json())["tags"]
            assert (await client.post(path, data={"score": "bad", "comment": "slow"})).status == 200
            after = await (await client.get(f"/api/v1/tickets/{ticket['id']}")).json()
            assert after["tags"] == ["unhappy"] and after["satisfaction"]["score"] == "bad"
            comments = (await (await client.get(f"/api/v1/tickets/{ticket['id']}/comments")).json())["comments"]
            assert comments[-1]["body"] == "Rated bad: call them." and comments[-1]["visibility"] == "internal"
            assert [t for t in await _fired(gateway, ticket["id"]) if tok in t] == [f"unhappy {tok}"]
        finally:
            await client.delete(f"/api/v1/triggers/{ident}")
