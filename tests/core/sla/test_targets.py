"""SLA targets end to end: mail in over SMTP, agents over HTTP, breaches by two schedulers."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timedelta

from sqlalchemy import func, select, update

from core.audit.models import TicketAuditLog
from core.clock import utcnow
from core.db import Database
from core.events import TOPIC_SLA_BREACHED, OutboxEvent
from core.jobs.scheduler import Jobs
from core.metrics import Metrics
from core.sla.models import TicketSlaTarget
from tests.gateway.test_conversations import deliver, email
from tests.support.gateway import Running

BILLING = "billing@example.com"


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


async def targets(client, ticket_id) -> dict:  # type: ignore[no-untyped-def]
    response = await client.get(f"/api/v1/tickets/{ticket_id}/sla")
    assert response.status == 200, await response.text()
    body = await response.json()
    return {"sla_breach_at": body["sla_breach_at"], **{t["metric"]: t for t in body["targets"]}}


async def test_targets_through_a_conversation(gateway: Running) -> None:
    sender = f"rita-{uuid.uuid4().hex[:6]}@customer.test"
    warm, _ = email(sender, "warm-up", "makes sure the Billing group exists")
    warmed = await deliver(gateway, warm, rcpt=BILLING)
    group_id = (await _client_get(gateway, f"/api/v1/tickets/{warmed.ticket_id}"))["group_id"]
    async with gateway.http() as client:
        policy = await (await client.post("/api/v1/sla_policies", json={
            "title": f"Billing {uuid.uuid4().hex[:6]}", "filter": {"group_id": [group_id]},
            "metrics": {"first_reply_time": {"normal": 60, "urgent": 10}, "next_reply_time": {"normal": 120},
                        "resolution_time": {"normal": 600, "urgent": 240}},
        })).json()
        try:
            await _conversation(gateway, client, sender, group_id)
        finally:
            await client.delete(f"/api/v1/sla_policies/{policy['id']}")


async def billing_group(gateway: Running, sender: str) -> str:
    """The Billing group's id, the group made by a first mail to its address."""
    warm, _ = email(sender, "warm-up", "makes sure the Billing group exists")
    return (await _client_get(gateway, f"/api/v1/tickets/{(await deliver(gateway, warm, rcpt=BILLING)).ticket_id}"))["group_id"]


async def _client_get(gateway: Running, url: str) -> dict:
    async with gateway.http() as client:
        return await (await client.get(url)).json()


async def _conversation(gateway: Running, client, sender: str, group_id: str) -> None:  # type: ignore[no-untyped-def]
    raw, first_id = email(sender, "Invoice wrong", "Please fix my invoice.")
    inbound = await deliver(gateway, raw, rcpt=BILLING)
    ticket_id = inbound.ticket_id
    ticket = await (await client.get(f"/api/v1/tickets/{ticket_id}")).json()
    created = at(ticket["created_at"])
    sla = await targets(client, ticket_id)
    assert at(sla["first_reply_time"]["target_at"]) == created + timedelta(minutes=60)
    assert at(sla["resolution_time"]["target_at"]) == created + timedelta(minutes=600)
    assert "next_reply_time" not in sla and sla["sla_breach_at"] == sla["first_reply_time"]["target_at"]
    assert ticket["sla_breach_at"] is not None and at(ticket["sla_breach_at"]) == created + timedelta(minutes=60)

    # an agent answers (JSON comment, the fast path): first reply achieved
    assert (await client.post(f"/api/v1/tickets/{ticket_id}/comments", json={"body": "On it."})).status == 201
    sla = await targets(client, ticket_id)
    assert sla["first_reply_time"]["fulfilled_at"] is not None
    assert sla["sla_breach_at"] == sla["resolution_time"]["target_at"]

    # the customer writes again by mail: a next-reply target starts
    reply, _ = email(sender, "Re: Invoice wrong", "Any news?", in_reply_to=first_id)
    assert (await deliver(gateway, reply, rcpt=BILLING)).ticket_id == ticket_id
    sla = await targets(client, ticket_id)
    next_reply = sla["next_reply_time"]
    assert at(next_reply["target_at"]) == at(next_reply["started_at"]) + timedelta(minutes=120)
    assert sla["sla_breach_at"] == next_reply["target_at"]

    # pending pauses the resolution target; reopening with an answer resumes it, later than before
    before = at(sla["resolution_time"]["target_at"])
    assert (await client.put(f"/api/v1/tickets/{ticket_id}", json={"status": "pending"})).status == 200
    paused = await targets(client, ticket_id)
    assert paused["resolution_time"]["paused"] is True and paused["sla_breach_at"] == next_reply["target_at"]
    await asyncio.sleep(0.05)
    answer = {"status": "open", "comment": {"body": "Fixed, please check."}}
    assert (await client.put(f"/api/v1/tickets/{ticket_id}", json=answer)).status == 200
    sla = await targets(client, ticket_id)
    assert sla["next_reply_time"]["fulfilled_at"] is not None and sla["resolution_time"]["paused"] is False
    assert at(sla["resolution_time"]["target_at"]) > before

    # urgent now: the running target follows the policy's urgent minutes
    assert (await client.put(f"/api/v1/tickets/{ticket_id}", json={"priority": "urgent"})).status == 200
    sla = await targets(client, ticket_id)
    resolution = sla["resolution_time"]
    assert created + timedelta(minutes=240) < at(resolution["target_at"]) < created + timedelta(minutes=241)

    # past due: two schedulers at once mark it breached once, with an audit entry and an event
    async with gateway.db.unit_of_work() as session:
        await session.execute(update(TicketSlaTarget).where(
            TicketSlaTarget.ticket_id == ticket_id, TicketSlaTarget.metric == "resolution_time",
        ).values(target_at=utcnow() - timedelta(minutes=1)))
    schedulers = [Jobs(Database(gateway.db.url, pool_size=2), gateway.gateway.settings, Metrics()) for _ in range(2)]
    await asyncio.gather(*(s.run("sla_breaches") for s in schedulers))
    for scheduler in schedulers:
        await scheduler.db.dispose()
    sla = await targets(client, ticket_id)
    assert sla["resolution_time"]["breached_at"] is not None and sla["sla_breach_at"] is None
    async with gateway.db.unit_of_work() as session:
        breaches = await session.scalar(select(func.count()).select_from(TicketAuditLog).where(
            TicketAuditLog.ticket_id == ticket_id, TicketAuditLog.action == "sla_breach"))
        events = await session.scalar(select(func.count()).select_from(OutboxEvent).where(
            OutboxEvent.key == str(ticket_id), OutboxEvent.topic == TOPIC_SLA_BREACHED))
    assert (breaches, events) == (1, 1)

    compliance = await (await client.get("/api/v1/sla/compliance", params={"group_id": group_id})).json()
    metrics = compliance["metrics"]
    assert metrics["first_reply_time"]["achieved"] >= 1 and metrics["next_reply_time"]["achieved"] >= 1
    assert metrics["resolution_time"]["breached"] >= 1
    bad = await client.get("/api/v1/sla/compliance", params={"from": "2026-02-01", "to": "2026-01-01"})
    assert bad.status == 422


async def test_business_hours_on_a_policy(gateway: Running) -> None:
    hours = {"timezone": "Europe/Berlin", "weekly": {"mon": [["09:00", "17:00"]], "tue": [["09:00", "17:00"]]}}
    async with gateway.http() as client:
        response = await client.post("/api/v1/sla_policies", json={
            "title": "Office hours", "active": False, "metrics": {"first_reply_time": {"normal": 60}},
            "business_hours": hours,
        })
        assert response.status == 201, await response.text()
        policy = await response.json()
        assert policy["business_hours"] == hours
        await client.delete(f"/api/v1/sla_policies/{policy['id']}")
        bad = await client.post("/api/v1/sla_policies", json={
            "title": "Mars", "metrics": {"first_reply_time": {"normal": 60}},
            "business_hours": {"timezone": "Mars/Olympus", "weekly": {"mon": [["09:00", "17:00"]]}},
        })
        assert bad.status == 422 and any(f.startswith("business_hours") for f in (await bad.json())["error"]["fields"])


async def test_targets_move_on_after_their_policy_is_deactivated(gateway: Running) -> None:
    """A ticket keeps the targets a policy gave it: an agent's answer still achieves the first
    reply and solving still ends the resolution target; a customer's reply with no policy in
    force starts nothing."""
    sender = f"dora-{uuid.uuid4().hex[:6]}@customer.test"
    group_id = await billing_group(gateway, sender)
    async with gateway.http() as client:
        policy = await (await client.post("/api/v1/sla_policies", json={
            "title": f"Billing {uuid.uuid4().hex[:6]}", "filter": {"group_id": [group_id]},
            "metrics": {"first_reply_time": {"normal": 60}, "next_reply_time": {"normal": 120},
                        "resolution_time": {"normal": 600}},
        })).json()
        try:
            raw, first_id = email(sender, "Refund", "Please refund order 7.")
            ticket_id = (await deliver(gateway, raw, rcpt=BILLING)).ticket_id
            assert (await client.put(f"/api/v1/sla_policies/{policy['id']}", json={"active": False})).status == 200
            before = await targets(client, ticket_id)
            assert before["first_reply_time"]["fulfilled_at"] is None

            reply, _ = email(sender, "Re: Refund", "Any news?", in_reply_to=first_id)
            assert (await deliver(gateway, reply, rcpt=BILLING)).ticket_id == ticket_id
            assert await targets(client, ticket_id) == before

            assert (await client.post(f"/api/v1/tickets/{ticket_id}/comments", json={"body": "Done."})).status == 201
            sla = await targets(client, ticket_id)
            assert sla["first_reply_time"]["fulfilled_at"] is not None and "next_reply_time" not in sla
            assert sla["sla_breach_at"] == sla["resolution_time"]["target_at"]
            assert (await client.put(f"/api/v1/tickets/{ticket_id}", json={"status": "solved"})).status == 200
            sla = await targets(client, ticket_id)
            assert sla["resolution_time"]["fulfilled_at"] is not None and sla["sla_breach_at"] is None
        finally:
            await client.delete(f"/api/v1/sla_policies/{policy['id']}")


async def test_a_policy_edited_between_two_mails_sets_the_second_ones_target(gateway: Running) -> None:
    """Ingest knows the policies by their version: an edit (not only a new or deactivated
    policy) reaches the next batch of the same process."""
    sender = f"edna-{uuid.uuid4().hex[:6]}@customer.test"
    group_id = await billing_group(gateway, sender)
    async with gateway.http() as client:
        policy = await (await client.post("/api/v1/sla_policies", json={
            "title": f"Billing {uuid.uuid4().hex[:6]}", "filter": {"group_id": [group_id]},
            "metrics": {"first_reply_time": {"normal": 60}},
        })).json()
        try:
            minutes = []
            for first_reply in (60, 15):
                edited = await client.put(f"/api/v1/sla_policies/{policy['id']}",
                                          json={"metrics": {"first_reply_time": {"normal": first_reply}}})
                assert edited.status == 200, await edited.text()
                raw, _ = email(sender, f"Question {first_reply}", "When does my order ship?")
                target = (await targets(client, (await deliver(gateway, raw, rcpt=BILLING)).ticket_id))["first_reply_time"]
                minutes.append(round((at(target["target_at"]) - at(target["started_at"])).total_seconds() / 60))
            assert minutes == [60, 15]
        finally:
            await client.delete(f"/api/v1/sla_policies/{policy['id']}")
