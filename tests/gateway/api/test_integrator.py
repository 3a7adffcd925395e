"""What an integrator's first script does: create tickets its own way, filter and sort lists,
look things up, and get answers that name the field."""

from __future__ import annotations

import uuid

from datetime import timedelta
from email.message import EmailMessage

import aiohttp
from sqlalchemy import func, select, update

from core.ingest.models import InboundMessage
from core.tickets.models import Ticket
from tests.gateway.test_conversations import deliver

from tests.gateway.api.test_tickets import create, new_ticket_body
from tests.support.gateway import Running


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def get_json(client: aiohttp.ClientSession, path: str, params=None) -> dict:  # type: ignore[no-untyped-def]
    response = await client.get(path, params=params)
    assert response.status == 200, await response.text()
    return await response.json()


async def error_of(response: aiohttp.ClientResponse, status: int) -> dict:
    assert response.status == status, await response.text()
    error = (await response.json())["error"]
    for sql_word in ("INSERT", "UPDATE", "DETAIL", "constraint", "Key ("):
        assert sql_word not in error["message"], error
    return error


async def test_description_channel_and_external_id(gateway: Running) -> None:
    ext = unique("crm")
    async with gateway.http() as client:
        ticket = await create(client, comment=None, description="Printer on fire", channel="phone", external_id=ext)
        assert (ticket["channel"], ticket["description"]) == ("phone", "Printer on fire")
        comments = (await get_json(client, f"/api/v1/tickets/{ticket['id']}/comments"))["comments"]
        assert [(c["body"], c["visibility"]) for c in comments] == [("Printer on fire", "public")]
        for body, field in (
            (new_ticket_body(description="both"), "description"),
            (new_ticket_body(comment=None), "description"),
            (new_ticket_body(channel="email"), "channel"),
            (new_ticket_body(channel="fax"), "channel"),
        ):
            error = await error_of(await client.post("/api/v1/tickets", json=body), 422)
            assert field in error["fields"] and field in error["message"], error
        duplicate = await error_of(await client.post("/api/v1/tickets", json=new_ticket_body(external_id=ext)), 409)
        assert list(duplicate["fields"]) == ["external_id"] and f"#{ticket['number']}" in duplicate["message"]
        # an update colliding with another ticket's id is caught by the unique index, told in words
        other = await create(client)
        clash = await error_of(await client.put(f"/api/v1/tickets/{other['id']}", json={"external_id": ext}), 409)
        assert "external_id" in clash["fields"], clash
        found = await get_json(client, "/api/v1/tickets", {"external_id": ext})
        assert [t["id"] for t in found["tickets"]] == [ticket["id"]]


async def test_filters_take_several_values_either_way(gateway: Running) -> None:
    tag = unique("multi")
    async with gateway.http() as client:
        a = await create(client, tags=[tag], priority="low")
        b = await create(client, tags=[tag], priority="urgent", status="open")
        await create(client, tags=[tag], priority="normal", status="pending")
        repeated = await get_json(client, f"/api/v1/tickets?tags={tag}&status=new&status=open")
        commas = await get_json(client, f"/api/v1/tickets?tags={tag}&status=new,open")
        assert [t["id"] for t in repeated["tickets"]] == [t["id"] for t in commas["tickets"]] == [b["id"], a["id"]]
        both = await get_json(client, f"/api/v1/tickets?tags={tag}&priority=low,urgent&status=open")
        assert [t["id"] for t in both["tickets"]] == [b["id"]]
        requesters = f"{a['requester_id']},{b['requester_id']}"
        by_requester = await get_json(client, f"/api/v1/tickets?requester_id={requesters}")
        assert {t["id"] for t in by_requester["tickets"]} == {a["id"], b["id"]}
        twice = await error_of(await client.get("/api/v1/tickets?limit=1&limit=5"), 422)
        assert "limit" in twice["fields"]
        bad = await error_of(await client.get("/api/v1/tickets?status=new,exploded"), 422)
        assert any(name.startswith("status") for name in bad["fields"])


async def test_every_sort_pages_through_everything_in_order(gateway: Running) -> None:
    tag = unique("sorted")
    async with gateway.http() as client:
        made = [
            await create(client, tags=[tag], priority=p, status=s)
            for p, s in (("high", "open"), ("low", "new"), ("urgent", "pending"), ("low", "open"), ("normal", "new"))
        ]
        await client.put(f"/api/v1/tickets/{made[1]['id']}", json={"priority": "urgent"})  # updated_at moves
        # SLA targets (the scheduler's job) on two tickets: the others come last whichever the direction
        async with gateway.db.unit_of_work() as session:
            for ticket, hours in ((made[2], 1), (made[4], 5)):
                await session.execute(
                    update(Ticket).where(Ticket.id == uuid.UUID(ticket["id"]))
                    .values(sla_breach_at=func.now() + timedelta(hours=hours))
                )
        for sort in ("created_at", "updated_at", "priority", "status", "number", "sla_breach_at"):
            for key in (sort, f"-{sort}"):
                whole = await get_json(client, "/api/v1/tickets", {"tags": tag, "sort": key, "limit": "100"})
                paged, cursor = [], None
                while True:
                    params = {"tags": tag, "sort": key, "limit": "2", **({"cursor": cursor} if cursor else {})}
                    page = await get_json(client, "/api/v1/tickets", params)
                    paged += [t["id"] for t in page["tickets"]]
                    cursor = page["next_cursor"]
                    if cursor is None:
                        break
                assert paged == [t["id"] for t in whole["tickets"]], key
                assert sorted(paged) == sorted(t["id"] for t in made), key
        by_priority = await get_json(client, "/api/v1/tickets", {"tags": tag, "sort": "-priority", "limit": "100"})
        for key in ("sla_breach_at", "-sla_breach_at"):
            listed = (await get_json(client, "/api/v1/tickets", {"tags": tag, "sort": key}))["tickets"]
            breaches = [t["sla_breach_at"] for t in listed]
            assert None not in breaches[:2] and breaches[2:] == [None] * 3, (key, breaches)
            assert breaches[:2] == sorted(breaches[:2], reverse=key.startswith("-")), key
        ranks = ["low", "normal", "high", "urgent"]
        priorities = [ranks.index(t["priority"]) for t in by_priority["tickets"]]
        assert priorities == sorted(priorities, reverse=True)
        page = await get_json(client, "/api/v1/tickets", {"tags": tag, "sort": "priority", "limit": "2"})
        mixed = await error_of(
            await client.get("/api/v1/tickets", params={"tags": tag, "sort": "number", "cursor": page["next_cursor"]}), 422
        )
        assert "cursor" in mixed["fields"] and "priority" in mixed["message"]


async def test_repository_lookups(gateway: Running) -> None:
    async with gateway.http() as client:
        agent = await (await client.post("/api/v1/agents", json={"email": f"{unique('a')}@agents.test", "name": "Ann"})).json()
        loner = await (await client.post("/api/v1/agents", json={"email": f"{unique('b')}@agents.test", "name": "Bob"})).json()
        group = await (await client.post("/api/v1/groups", json={"name": unique("Tier 2"), "agent_ids": [agent["id"]]})).json()
        members = await get_json(client, "/api/v1/agents", {"group_id": group["id"]})
        assert [a["id"] for a in members["agents"]] == [agent["id"]] and loner["id"] != agent["id"]
        groups = await get_json(client, "/api/v1/groups", {"include": "agents", "limit": "100"})
        mine = next(g for g in groups["groups"] if g["id"] == group["id"])
        assert [a["email"] for a in mine["agents"]] == [agent["email"]]
        one = await get_json(client, f"/api/v1/groups/{group['id']}", {"include": "agents"})
        assert [a["id"] for a in one["agents"]] == [agent["id"]]
        assert (await get_json(client, f"/api/v1/groups/{group['id']}"))["agents"] is None
        assert (await client.get("/api/v1/groups", params={"include": "everything"})).status == 422

        domain = f"{unique('acme')}.test"
        org = await (await client.post("/api/v1/organizations", json={"name": unique("Acme"), "domains": [domain]})).json()
        found = await get_json(client, "/api/v1/organizations", {"domain": domain.upper()})
        assert [o["id"] for o in found["organizations"]] == [org["id"]]

        title = unique("urgent only")
        policy = await (await client.post("/api/v1/sla_policies", json={
            "title": title, "filter": {"priority": ["urgent"]}, "metrics": {"first_reply_time": {"urgent": 30}},
        })).json()
        urgent = await get_json(client, "/api/v1/sla_policies", {"priority": "urgent", "limit": "100"})
        low = await get_json(client, "/api/v1/sla_policies", {"priority": "low", "limit": "100"})
        assert policy["id"] in [p["id"] for p in urgent["sla_policies"]]
        assert policy["id"] not in [p["id"] for p in low["sla_policies"]]

        name = unique("Zoë_100%")
        email = f"{unique('zoe')}@Customer.test"
        customer = await (await client.post("/api/v1/customers", json={"email": email, "name": name})).json()
        await client.post("/api/v1/customers", json={"email": f"{unique('x')}@customer.test", "name": "Zoe 1000"})
        by_email = await get_json(client, "/api/v1/customers", {"email": email.upper()})
        assert [c["id"] for c in by_email["customers"]] == [customer["id"]]
        partial = await get_json(client, "/api/v1/customers", {"q": name[3:12].lower()})
        assert [c["id"] for c in partial["customers"]] == [customer["id"]]
        literal = await get_json(client, "/api/v1/customers", {"q": "_100%"})
        assert customer["id"] in [c["id"] for c in literal["customers"]]
        assert all("_100%" in c["name"] or "_100%" in c["email"] for c in literal["customers"])


async def test_conflicts_are_explained_in_words(gateway: Running) -> None:
    async with gateway.http() as client:
        group = await (await client.post("/api/v1/groups", json={"name": unique("Busy")})).json()
        for _ in range(3):
            await create(client, group_id=group["id"])
        error = await error_of(await client.delete(f"/api/v1/groups/{group['id']}"), 409)
        assert "still has 3 tickets" in error["message"] and "move them first" in error["message"]
        name = unique("Twice")
        await client.post("/api/v1/groups", json={"name": name})
        again = await error_of(await client.post("/api/v1/groups", json={"name": name}), 409)
        assert again["fields"] == {"name": "already used"} and "group" in again["message"]


async def test_erasure_removes_personal_data_and_keeps_the_tickets(gateway: Running) -> None:
    address = f"{unique('erin')}@customer.test"
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = f"Erin Example <{address}>", "support@example.com", "Invoice question"
    m["Message-ID"] = f"<{uuid.uuid4().hex}@customer.test>"
    m.set_content("My account number is 12345.")
    m.add_attachment(b"secret scan", maintype="application", subtype="pdf", filename="passport.pdf")
    inbound = await deliver(gateway, m.as_bytes(), mail_from=address)
    assert inbound.ticket_id is not None
    async with gateway.http() as client:
        ticket = await get_json(client, f"/api/v1/tickets/{inbound.ticket_id}")
        await client.post(f"/api/v1/tickets/{ticket['id']}/comments", json={"body": "We are on it."})
        [first] = (await get_json(client, f"/api/v1/tickets/{ticket['id']}/comments"))["comments"][:1]
        [attachment] = first["attachments"]
        assert (await client.get(attachment["url"])).status == 200
        await client.put(f"/api/v1/customers/{ticket['requester_id']}", json={"phone": "+44 20 7946 0000",
                                                                             "custom_fields": {"vip": True}})

        response = await client.delete(f"/api/v1/customers/{ticket['requester_id']}")
        assert response.status == 200, await response.text()
        customer = await response.json()
        assert (customer["name"], customer["phone"], customer["custom_fields"]) == ("", None, {})
        assert address not in customer["email"] and customer["erased_at"] is not None
        assert (await get_json(client, "/api/v1/customers", {"email": address}))["customers"] == []

        kept = await get_json(client, f"/api/v1/tickets/{ticket['id']}")
        assert kept["subject"] == "Invoice question" and "12345" not in kept["description"]
        comments = (await get_json(client, f"/api/v1/tickets/{ticket['id']}/comments"))["comments"]
        assert [c["body"] for c in comments][1:] == ["We are on it."]  # the agent's words stay
        assert "removed on" in comments[0]["body"] and "12345" not in comments[0]["body"]
        assert comments[0]["attachments"] == [] and comments[0]["html_body"] is None
        assert (await client.get(attachment["url"])).status == 404
        audits = (await get_json(client, f"/api/v1/tickets/{ticket['id']}/audits"))["audits"]
        erased = [a for a in audits if a["action"] == "customer_erased"]
        assert len(erased) == 1 and erased[0]["actor_type"] == "agent" and erased[0]["actor_id"]
        again = await client.delete(f"/api/v1/customers/{ticket['requester_id']}")
        assert again.status == 200  # erasing twice is harmless
    async with gateway.db.unit_of_work() as session:
        raw = await session.scalar(select(InboundMessage.raw).where(InboundMessage.id == inbound.id))
    assert b"12345" not in raw and b"secret scan" not in raw and address.encode() not in raw
    assert not list(gateway.gateway.settings.attachments_dir.rglob(attachment["sha256"]))


async def test_deleting_an_agent_deactivates_and_the_last_admin_stays(gateway: Running) -> None:
    async with gateway.http() as client:
        agent = await (await client.post("/api/v1/agents", json={"email": f"{unique('c')}@agents.test", "name": "Cy"})).json()
        response = await client.delete(f"/api/v1/agents/{agent['id']}")
        assert response.status == 200 and (await response.json())["active"] is False
        assert (await get_json(client, f"/api/v1/agents/{agent['id']}"))["active"] is False
        admins = (await get_json(client, "/api/v1/agents", {"role": "admin", "active": "true", "limit": "100"}))["agents"]
        mine = [t for t in (await get_json(client, "/api/v1/tokens"))["tokens"] if gateway.token.startswith(t["prefix"])]
        me = mine[0]["agent_id"]
        for other in admins:
            if other["id"] != me:
                await client.put(f"/api/v1/agents/{other['id']}", json={"active": False})
        last = await error_of(await client.delete(f"/api/v1/agents/{me}"), 409)
        assert "last active admin" in last["message"]


async def test_refusals_read_as_english(gateway: Running) -> None:
    from core.agents.service import agent_service
    from core.enums import AgentRole

    async with gateway.db.unit_of_work() as session:
        light = await agent_service.token_for(
            session, email=f"{unique('light')}@agents.test", name="Lee", role=AgentRole.light_agent
        )
    async with gateway.http(light) as client:
        error = await error_of(await client.post("/api/v1/groups", json={"name": unique("G")}), 403)
        assert error["message"] == "a light agent may not do this"
    async with gateway.http() as client:
        doc = await get_json(client, "/api/v1/openapi.json")
    assert doc["paths"]["/api/v1/agents"]["post"]["summary"] == "Create an agent"
    assert doc["paths"]["/api/v1/sla_policies/{id}"]["delete"]["summary"] == "Delete an SLA policy"
