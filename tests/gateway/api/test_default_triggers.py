"""The default notifications are seeded triggers: listed, editable, deactivatable, seeded once.

A database of its own (the session's shared one must keep its defaults as they are): mail in
over SMTP, the acknowledgement out over SMTP to a local sink, a restart on the same database.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from email.utils import getaddresses
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import func, select, update

from core.agents.service import agent_service
from core.audit.models import TicketAuditLog
from core.clock import utcnow
from core.db import Database
from core.enums import AgentRole
from core.events import OutboundDelivery, OutboxEvent
from core.mail.addresses import split_address
from core.mail.tokens import INTERNAL, token_scope
from core.secrets import REPLY_TOKEN_SECRET, server_secret
from core.jobs.scheduler import Jobs
from core.metrics import Metrics
from core.migrate import upgrade
from core.setup_steps import SetupStep
from core.tickets.models import Ticket
from core.triggers.defaults import DEFAULT_TRIGGERS
from tests.gateway.test_conversations import deliver, email
from tests.outbound.support import SmtpSink, eventually
from tests.support.gateway import Running, make_settings, running_gateway
from tests.support.postgres import create_database, drop_database

ACK = "Notify requester of received request"


@pytest.fixture
async def own_database(pg_server: str) -> AsyncIterator[str]:
    url = await create_database(pg_server)
    await upgrade(url)
    yield url
    await drop_database(pg_server, url)


def start(url: str, tmp_path: Path, sink: SmtpSink):  # type: ignore[no-untyped-def]
    return running_gateway(make_settings(
        url, tmp_path / "data", smtp_relay=sink.relay, mail_retry_seconds=0.2, outbox_poll_seconds=0.05,
    ))


async def triggers_by_title(client: aiohttp.ClientSession) -> dict[str, dict]:
    response = await client.get("/api/v1/triggers?limit=100")
    assert response.status == 200
    body = await response.json()
    return {t["title"]: t for t in body["triggers"]}


async def new_ticket_mail(gw: Running, subject: str) -> tuple[str, uuid.UUID]:
    address = f"req-{uuid.uuid4().hex[:8]}@customer.test"
    raw, _ = email(f"Rita <{address}>", subject, "The printer is on fire.")
    inbound = await deliver(gw, raw)
    assert inbound.ticket_id is not None
    return address, inbound.ticket_id


async def mailed(gw: Running, ticket_id: uuid.UUID) -> list[OutboundDelivery]:
    """The ticket's deliveries, once all its events went through the in-process mailer."""
    async def published() -> bool:
        async with gw.db.unit_of_work() as session:
            left = await session.scalar(select(func.count()).select_from(OutboxEvent).where(
                OutboxEvent.key == str(ticket_id), OutboxEvent.published_at.is_(None)))
        return left == 0
    await eventually(published, what="the ticket's events handled")
    async with gw.db.unit_of_work() as session:
        return list(await session.scalars(select(OutboundDelivery).where(OutboundDelivery.ticket_id == ticket_id)))


async def test_defaults_are_listed_edited_deactivated_and_seeded_only_once(
    own_database: str, tmp_path: Path, sink: SmtpSink,
) -> None:
    async with start(own_database, tmp_path, sink) as gw, gw.http() as client:
        found = await triggers_by_title(client)
        assert set(found) == {d["title"] for d in DEFAULT_TRIGGERS}
        ack = found[ACK]
        assert ack["active"] and ack["actions"] == [
            {"field": "notify_requester", "value": {"template": "ticket_created"}, "public": True}
        ]

        # as seeded: today's acknowledgement, threaded to the customer's message
        address, _ = await new_ticket_mail(gw, "Printer on fire")
        [first] = await sink.wait_for(address)
        assert first.message["Subject"].endswith("] Printer on fire")
        assert first.message["Auto-Submitted"] == "auto-replied" and first.message["In-Reply-To"]

        # an admin's subject and text replace the built-in ones; everything else stays
        response = await client.put(f"/api/v1/triggers/{ack['id']}", json={"actions": [{
            "field": "notify_requester", "value": {
                "template": "ticket_created", "subject": "Got it: {{ ticket.subject }}",
                "body": "Dear {{ requester.name }}, ticket {{ ticket.number }} is ours now.",
            },
        }]})
        assert response.status == 200, await response.text()
        address, _ = await new_ticket_mail(gw, "Scanner jammed")
        [edited] = await sink.wait_for(address)
        number = edited.message["X-Helpdesk-Ticket"]
        assert edited.message["Subject"] == f"[#{number}] Got it: Scanner jammed"
        assert f"Dear Rita, ticket {number} is ours now." in edited.message.get_body(("plain",)).get_content()
        assert edited.message["Auto-Submitted"] == "auto-replied" and edited.message["In-Reply-To"]
        assert "+" in edited.message["Reply-To"]  # the reply token

        # a built-in mail only goes where its rules allow: an acknowledgement is the requester's
        response = await client.put(f"/api/v1/triggers/{ack['id']}", json={"actions": [
            {"field": "notify_group", "value": {"template": "ticket_created"}},
        ]})
        assert response.status == 422

        # deactivated: no acknowledgement at all
        response = await client.put(f"/api/v1/triggers/{ack['id']}", json={"active": False})
        assert response.status == 200
        address, ticket_id = await new_ticket_mail(gw, "Fax silent")
        assert await mailed(gw, ticket_id) == [] and sink.to(address) == []

        note = found["Notify assignee of internal note"]
        assert (await client.delete(f"/api/v1/triggers/{note['id']}")).status == 204

    # a restart seeds nothing again: the deleted default stays deleted, the edited one as edited
    async with start(own_database, tmp_path, sink) as gw, gw.http() as client:
        again = await triggers_by_title(client)
        assert set(again) == {d["title"] for d in DEFAULT_TRIGGERS} - {"Notify assignee of internal note"}
        assert again[ACK]["active"] is False and again[ACK]["actions"][0]["value"]["subject"].startswith("Got it")
        async with gw.db.unit_of_work() as session:
            assert await session.scalar(select(func.count()).select_from(SetupStep)) == 1
        # and active again: acknowledgements as before
        assert (await client.put(f"/api/v1/triggers/{again[ACK]['id']}", json={"active": True})).status == 200
        address, _ = await new_ticket_mail(gw, "Back on")
        [back] = await sink.wait_for(address)
        assert back.message["Subject"].endswith("Got it: Back on")


async def test_api_comments_are_mailed_by_the_comment_triggers(own_database: str, tmp_path: Path, sink: SmtpSink) -> None:
    """JSON comments (the driver-written path) fire the seeded comment triggers in their own
    statements: the requester gets a public reply, the assignee another agent's internal note
    (with an internal reply token); with its trigger deactivated, the public reply is not mailed."""
    async with start(own_database, tmp_path, sink) as gw, gw.http() as client:
        async with gw.db.unit_of_work() as session:
            assignee = await agent_service.create(
                session, email=f"ada-{uuid.uuid4().hex[:6]}@agents.test", name="Ada", role=AgentRole.agent,
            )
        address, ticket_id = await new_ticket_mail(gw, "Printer on fire")
        await sink.wait_for(address)  # the acknowledgement
        url = f"/api/v1/tickets/{ticket_id}"
        assert (await client.put(url, json={"assignee_id": str(assignee.id)})).status == 200
        [assigned] = await sink.wait_for(assignee.email)
        assert "assigned to you" in assigned.message.get_body(("plain",)).get_content()

        assert (await client.post(f"{url}/comments", json={"body": "A new fuser is on its way."})).status == 201
        [_, reply] = await sink.wait_for(address, 2)
        assert "A new fuser is on its way." in reply.message.get_body(("plain",)).get_content()
        assert reply.message["Auto-Submitted"] is None  # an agent's own words, not a robot's
        response = await client.post(f"{url}/comments", json={"body": "Customer is grumpy.", "visibility": "internal"})
        assert response.status == 201
        [_, public_copy, note] = await sink.wait_for(assignee.email, 3)  # the agent's public reply, the note
        assert "A new fuser" in public_copy.message.get_body(("plain",)).get_content()
        assert "Customer is grumpy." in note.message.get_body(("plain",)).get_content()
        token = split_address(next(a for _, a in getaddresses([note.message["Reply-To"]])))[1]
        async with gw.db.unit_of_work() as session:
            secret = await server_secret(session, REPLY_TOKEN_SECRET)
        assert token_scope(secret, token, ticket_id=ticket_id, address=assignee.email) == INTERNAL
        fired = [a.changes["trigger"]["title"] for a in await audits(gw, ticket_id) if a.action == "trigger"]
        assert fired == [
            ACK, "Notify assignee of assignment", "Notify requester and followers of public comment",
            "Notify assignee of public comment", "Notify assignee of internal note",
        ]

        found = await triggers_by_title(client)
        public = found["Notify requester and followers of public comment"]
        assert (await client.put(f"/api/v1/triggers/{public['id']}", json={"active": False})).status == 200
        assert (await client.post(f"{url}/comments", json={"body": "Silence."})).status == 201
        await mailed(gw, ticket_id)
        [*_, copy] = await sink.wait_for(assignee.email, 4)  # the assignee's trigger is still on
        assert "Silence." in copy.message.get_body(("plain",)).get_content()
        assert len(sink.to(address)) == 2


async def audits(gw: Running, ticket_id: uuid.UUID) -> list[TicketAuditLog]:
    async with gw.db.unit_of_work() as session:
        return list(await session.scalars(
            select(TicketAuditLog).where(TicketAuditLog.ticket_id == ticket_id)
            .order_by(TicketAuditLog.created_at, TicketAuditLog.id)
        ))


async def test_an_automation_that_solves_mails_the_requester_once(
    own_database: str, tmp_path: Path, sink: SmtpSink,
) -> None:
    """The automation's change is announced by the default trigger only (not also by its event)."""
    async with start(own_database, tmp_path, sink) as gw, gw.http() as client:
        address, ticket_id = await new_ticket_mail(gw, "Old one")
        await sink.wait_for(address)
        response = await client.post("/api/v1/automations", json={
            "title": "solve old tickets", "conditions": {"all": [
                {"field": "hours_since_created", "operator": "greater_than", "value": 1},
                {"field": "status", "operator": "is", "value": "new"},
            ]}, "actions": [{"field": "status", "value": "solved"}],
        })
        assert response.status == 201, await response.text()
        async with gw.db.unit_of_work() as session:
            await session.execute(update(Ticket).where(Ticket.id == ticket_id).values(
                created_at=utcnow() - timedelta(hours=2)))
        jobs = Jobs(Database(gw.db.url, pool_size=2), gw.gateway.settings, Metrics())
        try:
            await jobs.run("automations")
        finally:
            await jobs.db.dispose()
        deliveries = await mailed(gw, ticket_id)
        assert sorted(d.template for d in deliveries) == ["ticket_created", "ticket_status_changed"]
        [_, solved] = await sink.wait_for(address, 2)
        assert "as solved" in solved.message.get_body(("plain",)).get_content()
