"""Triggers that run, end to end: mail in over SMTP or a change over HTTP, the trigger acts in
the same transaction, its notification goes out over SMTP (to a local sink)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from sqlalchemy import select

from core.agents.service import agent_service
from core.audit.models import TicketAuditLog
from core.enums import AgentRole
from tests.gateway.api.test_tickets import create
from tests.gateway.test_conversations import deliver, email
from tests.outbound.support import SmtpSink
from tests.support.gateway import Running, make_settings, running_gateway


@pytest.fixture
async def gw(database_url: str, tmp_path: Path, sink: SmtpSink) -> AsyncIterator[Running]:
    settings = make_settings(
        database_url, tmp_path / "data", smtp_relay=sink.relay, mail_retry_seconds=0.2, outbox_poll_seconds=0.05,
    )
    async with running_gateway(settings) as running:
        yield running


@pytest.fixture
def tok() -> str:
    """Each test's triggers match only its own tickets: the database is shared."""
    return f"t{uuid.uuid4().hex[:10]}"


class Triggers:
    def __init__(self, client: aiohttp.ClientSession) -> None:
        self.client = client
        self.ids: list[str] = []

    async def add(self, title: str, conditions: dict, actions: list[dict], position: int = 0) -> str:
        response = await self.client.post("/api/v1/triggers", json={
            "title": title, "position": position, "conditions": conditions, "actions": actions,
        })
        assert response.status == 201, await response.text()
        self.ids.append((await response.json())["id"])
        return self.ids[-1]

    async def remove_all(self) -> None:
        for ident in self.ids:
            await self.client.delete(f"/api/v1/triggers/{ident}")


@pytest.fixture
async def api(gw: Running) -> AsyncIterator[tuple[aiohttp.ClientSession, Triggers]]:
    async with gw.http() as client:
        triggers = Triggers(client)
        try:
            yield client, triggers
        finally:
            await triggers.remove_all()


async def audits(gw: Running, ticket_id: str) -> list[TicketAuditLog]:
    async with gw.db.unit_of_work() as session:
        return list(await session.scalars(
            select(TicketAuditLog).where(TicketAuditLog.ticket_id == uuid.UUID(ticket_id))
            .order_by(TicketAuditLog.created_at, TicketAuditLog.id)
        ))


async def agent_in_group(gw: Running, client: aiohttp.ClientSession, group: str, *, active: bool = True) -> dict:
    async with gw.db.unit_of_work() as session:
        agent = await agent_service.create(
            session, email=f"agent-{uuid.uuid4().hex[:8]}@agents.test", name="Ada <Agent>", role=AgentRole.agent,
        )
        agent_id = str(agent.id)
    found = await (await client.get(f"/api/v1/groups/{group}?include=agents")).json()
    members = [a["id"] if isinstance(a, dict) else a for a in found.get("agents", found.get("agent_ids", []))]
    response = await client.put(f"/api/v1/groups/{group}", json={"agent_ids": [*members, agent_id]})
    assert response.status == 200, await response.text()
    if not active:
        assert (await client.put(f"/api/v1/agents/{agent_id}", json={"active": False})).status == 200
    return {"id": agent_id, "email": agent.email}


async def new_group(client: aiohttp.ClientSession, name: str) -> str:
    response = await client.post("/api/v1/groups", json={"name": name})
    assert response.status == 201, await response.text()
    return (await response.json())["id"]


async def test_mail_fires_a_trigger_that_sets_fields_and_notifies_the_group(
    gw: Running, api: tuple, sink: SmtpSink, tok: str,
) -> None:
    client, triggers = api
    group = await new_group(client, f"Escalations {tok}")
    agent = await agent_in_group(gw, client, group)
    trigger_id = await triggers.add(
        "Urgent mail to escalations",
        {"all": [{"field": "event", "operator": "is", "value": "created"},
                 {"field": "via", "operator": "is", "value": "email"},
                 {"field": "subject", "operator": "contains", "value": f"urgent {tok}"}]},
        [{"field": "priority", "value": "urgent"}, {"field": "group_id", "value": group},
         {"field": "add_tags", "value": [tok]},
         {"field": "notify_group", "value": {
             "subject": "Urgent: {{ ticket.subject }}",
             "body": "From {{ requester.name }} <{{ requester.email }}>:\n{{ comment.body }}\n{{ ticket.nope.deeper }}",
         }}],
    )
    raw, _ = email("Rita <rita@customer.test>", f"URGENT {tok} <script>x</script>", "Server <b>down</b>\r\nBcc: x@evil.test")
    inbound = await deliver(gw, raw)
    ticket = await (await client.get(f"/api/v1/tickets/{inbound.ticket_id}")).json()
    assert (ticket["priority"], ticket["group_id"], tok in ticket["tags"]) == ("urgent", group, True)
    # the seeded acknowledgement trigger fired as well (tests/gateway/api/test_default_triggers.py)
    [note] = [a for a in await audits(gw, ticket["id"]) if a.action == "trigger" and a.changes["trigger"]["id"] == trigger_id]
    assert note.via == "trigger" and note.changes["trigger"] == {"id": trigger_id, "title": "Urgent mail to escalations"}
    [update] = [a for a in await audits(gw, ticket["id"]) if a.action == "update"]
    assert update.via == "trigger" and update.changes["priority"] == {"from": "normal", "to": "urgent"}
    [mail] = await sink.wait_for(agent["email"])
    message = mail.message
    assert message["Subject"] == f"[#{ticket['number']}] Urgent: URGENT {tok} <script>x</script>"
    assert message["Bcc"] is None
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "From Rita <rita@customer.test>:" in text and "Server <b>down</b>" in text
    assert "<b>down</b>" not in html and "Server &lt;b&gt;down&lt;/b&gt;" in html


async def test_triggers_chain_in_passes_and_each_fires_once(gw: Running, api: tuple, tok: str) -> None:
    client, triggers = api
    second = await triggers.add(  # first by position, but it matches only after the other fired
        "then", {"all": [{"field": "tags", "operator": "contains", "value": f"{tok}-a"}]},
        [{"field": "add_tags", "value": [f"{tok}-b"]}, {"field": "status", "value": "pending"}], position=0,
    )
    first = await triggers.add(
        "first", {"all": [{"field": "subject", "operator": "contains", "value": tok}]},
        [{"field": "add_tags", "value": [f"{tok}-a"]}], position=1,
    )
    ticket = await create(client, subject=f"chain {tok}")
    assert ticket["tags"] == [f"{tok}-a", f"{tok}-b"] and ticket["status"] == "pending"
    fired = [a.changes["trigger"]["id"] for a in await audits(gw, ticket["id"])
             if a.action == "trigger" and a.changes["trigger"]["id"] in (first, second)]
    assert fired == [first, second]
    # a later change is a new change: both match again, now in position order, once each
    response = await client.put(f"/api/v1/tickets/{ticket['id']}", json={"priority": "high"})
    assert response.status == 200
    fired = [a.changes["trigger"]["id"] for a in await audits(gw, ticket["id"])
             if a.action == "trigger" and a.changes["trigger"]["id"] in (first, second)]
    assert fired == [first, second, second, first]


async def test_passes_are_bounded(gw: Running, api: tuple, tok: str) -> None:
    client, triggers = api
    # twelve triggers, each waiting for the tag the one after it adds: one firing per pass
    for n in range(12):
        await triggers.add(
            f"step {n}", {"all": [{"field": "tags", "operator": "contains", "value": f"{tok}-{n}"}]},
            [{"field": "add_tags", "value": [f"{tok}-{n + 1}"]}], position=100 - n,
        )
    ticket = await create(client, subject="bounded", tags=[f"{tok}-0"])
    assert f"{tok}-10" in ticket["tags"] and f"{tok}-11" not in ticket["tags"]
    [loop] = [a for a in await audits(gw, ticket["id"]) if a.action == "trigger_loop"]
    assert "10 passes" in loop.changes["note"]


async def test_a_json_comment_fires_triggers_on_its_text(gw: Running, api: tuple, tok: str) -> None:
    client, triggers = api
    refunds = await triggers.add(
        "refunds", {"all": [{"field": "comment_text", "operator": "contains", "value": f"refund {tok}"},
                            {"field": "comment_author_type", "operator": "is", "value": "agent"},
                            {"field": "via", "operator": "is", "value": "api"}]},
        [{"field": "add_tags", "value": ["refund"]}, {"field": "comment", "value": "Refund noted.", "public": False}],
    )
    ticket = await create(client, subject="money")
    url = f"/api/v1/tickets/{ticket['id']}"
    plain = await client.post(f"{url}/comments", json={"body": "nothing to see"})
    assert plain.status == 201 and "refund" not in (await (await client.get(url)).json())["tags"]
    response = await client.post(f"{url}/comments", json={"body": f"Issued a REFUND {tok} today"})
    assert response.status == 201
    assert "refund" in (await (await client.get(url)).json())["tags"]
    comments = (await (await client.get(f"{url}/comments")).json())["comments"]
    assert [(c["body"], c["author_type"], c["visibility"]) for c in comments[-2:]] == [
        (f"Issued a REFUND {tok} today", "agent", "public"), ("Refund noted.", "system", "internal"),
    ]
    # the multipart comment takes the same path
    form = aiohttp.FormData()
    form.add_field("body", f"second refund {tok}")
    form.add_field("attachments", b"%PDF-1.4", filename="receipt.pdf", content_type="application/pdf")
    upload = await client.post(f"{url}/comments", data=form)
    assert upload.status == 201 and len((await upload.json())["attachments"]) == 1
    triggered = [a for a in await audits(gw, ticket["id"]) if a.action == "trigger" and a.changes["trigger"]["id"] == refunds]
    assert len(triggered) == 2


async def test_a_json_comment_sees_every_edit_of_the_triggers_at_once(gw: Running, api: tuple, tok: str) -> None:
    """The JSON comment path knows the active triggers by a version read with the ticket and
    parses them once per version: an edit, a deactivation, a reactivation and a deletion are
    each seen by the very next comment."""
    client, triggers = api
    conditions = {"all": [{"field": "comment_text", "operator": "contains", "value": tok}]}
    ident = await triggers.add("tagger", conditions, [{"field": "add_tags", "value": [f"{tok}-a"]}])
    ticket = await create(client, subject="versions")
    url = f"/api/v1/tickets/{ticket['id']}"

    async def comment() -> tuple[set[str], int]:
        response = await client.post(f"{url}/comments", json={"body": f"note {tok}", "visibility": "internal"})
        assert response.status == 201, await response.text()
        tags = set((await (await client.get(url)).json())["tags"])
        fired = [a for a in await audits(gw, ticket["id"]) if a.action == "trigger" and a.changes["trigger"]["id"] == ident]
        return tags, len(fired)

    async def edit(**fields: object) -> None:
        assert (await client.put(f"/api/v1/triggers/{ident}", json=fields)).status == 200

    assert await comment() == ({f"{tok}-a"}, 1)
    await edit(actions=[{"field": "add_tags", "value": [f"{tok}-b"]}])
    assert await comment() == ({f"{tok}-a", f"{tok}-b"}, 2)
    await edit(active=False)
    assert (await comment())[1] == 2
    await edit(active=True, actions=[{"field": "add_tags", "value": [f"{tok}-c"]}])
    assert await comment() == ({f"{tok}-a", f"{tok}-b", f"{tok}-c"}, 3)
    assert (await client.delete(f"/api/v1/triggers/{ident}")).status == 204
    assert (await comment())[1] == 3


async def test_a_broken_trigger_is_skipped_and_blocks_nothing(gw: Running, api: tuple, tok: str) -> None:
    client, triggers = api
    doomed = await new_group(client, f"Doomed {tok}")
    await triggers.add(
        "to a group that will be deleted", {"all": [{"field": "subject", "operator": "contains", "value": tok}]},
        [{"field": "add_tags", "value": ["never"]}, {"field": "group_id", "value": doomed}], position=0,
    )
    await triggers.add(
        "healthy", {"all": [{"field": "subject", "operator": "contains", "value": tok}]},
        [{"field": "add_tags", "value": ["healthy"]}], position=1,
    )
    assert (await client.delete(f"/api/v1/groups/{doomed}")).status == 204
    raw, _ = email("sam@customer.test", f"mail {tok}", "hello")
    inbound = await deliver(gw, raw)
    assert inbound.ticket_id is not None
    by_mail = await (await client.get(f"/api/v1/tickets/{inbound.ticket_id}")).json()
    assert by_mail["tags"] == ["healthy"]  # nothing of the broken one, not even its first action
    by_api = await create(client, subject=f"api {tok}")
    assert by_api["tags"] == ["healthy"]
    comment = await client.post(f"/api/v1/tickets/{by_api['id']}/comments", json={"body": "still works"})
    assert comment.status == 201


async def test_round_robin_skips_inactive_agents(gw: Running, api: tuple, tok: str) -> None:
    client, triggers = api
    group = await new_group(client, f"Rotation {tok}")
    one = await agent_in_group(gw, client, group)
    await agent_in_group(gw, client, group, active=False)
    two = await agent_in_group(gw, client, group)
    await triggers.add(
        "rotate", {"all": [{"field": "event", "operator": "is", "value": "created"},
                           {"field": "subject", "operator": "contains", "value": tok}]},
        [{"field": "assignee_id", "value": "round_robin"}],
    )
    assignees = [(await create(client, subject=f"r{n} {tok}", group_id=group))["assignee_id"] for n in range(4)]
    assert sorted(assignees[:2]) == sorted([one["id"], two["id"]]) and assignees[2:] == assignees[:2]


async def test_bad_triggers_are_refused_with_the_field_named(api: tuple) -> None:
    client, _ = api
    bad = [
        ({"all": [{"field": "tags", "operator": "is", "value": "x"}]}, [{"field": "status", "value": "open"}], "conditions"),
        ({"all": [{"field": "status", "operator": "is", "value": "open"}]},
         [{"field": "notify_group", "value": {"subject": "{% if %}", "body": "x"}}], "actions"),
        ({"all": [{"field": "status", "operator": "is", "value": "open"}]}, [{"field": "status", "value": "exploded"}], "actions"),
    ]
    for conditions, actions, field in bad:
        response = await client.post("/api/v1/triggers", json={"title": "bad", "conditions": conditions, "actions": actions})
        assert response.status == 422, await response.text()
        assert any(name.startswith(field) for name in (await response.json())["error"]["fields"])
