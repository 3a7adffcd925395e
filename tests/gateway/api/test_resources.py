"""Customers, agents, groups, organizations, macros, SLA policies, triggers, tokens over HTTP."""

from __future__ import annotations

import uuid

from core.agents.service import agent_service
from core.enums import AgentRole

from tests.support.gateway import Running


def unique_email(prefix: str = "c") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@customer.test"


async def test_customers_unique_case_insensitive_and_their_tickets(gateway: Running) -> None:
    async with gateway.http() as client:
        email = unique_email()
        created = await client.post("/api/v1/customers", json={"email": email.upper(), "name": "Cy"})
        assert created.status == 201
        customer = await created.json()
        assert customer["email"] == email
        duplicate = await client.post("/api/v1/customers", json={"email": email})
        assert duplicate.status == 409
        renamed = await (await client.put(f"/api/v1/customers/{customer['id']}", json={"name": "Cyd"})).json()
        assert renamed["name"] == "Cyd"
        found = await (await client.get("/api/v1/customers", params={"email": email})).json()
        assert [c["id"] for c in found["customers"]] == [customer["id"]]
        ticket = await (await client.post("/api/v1/tickets", json={
            "subject": "mine", "comment": {"body": "x"}, "requester_id": customer["id"],
        })).json()
        tickets = await (await client.get(f"/api/v1/customers/{customer['id']}/tickets")).json()
        assert [t["id"] for t in tickets["tickets"]] == [ticket["id"]]
        assert (await client.put(f"/api/v1/customers/{customer['id']}", json={"email": None})).status == 422
        assert (await client.get(f"/api/v1/customers/{uuid.uuid4()}")).status == 404


async def test_organization_domain_adopts_new_customers(gateway: Running) -> None:
    async with gateway.http() as client:
        domain = f"acme-{uuid.uuid4().hex[:6]}.test"
        org = await (await client.post("/api/v1/organizations", json={"name": f"Acme {domain}", "domains": [domain.upper()]})).json()
        assert org["domains"] == [domain]
        customer = await (await client.post("/api/v1/customers", json={"email": f"wile@{domain}"})).json()
        assert customer["organization_id"] == org["id"]
        bad = await client.post("/api/v1/organizations", json={"name": "x", "domains": ["not a domain"]})
        assert bad.status == 422 and "domains.0" in (await bad.json())["error"]["fields"]


async def test_agents_groups_and_the_last_admin(gateway: Running) -> None:
    async with gateway.http() as client:
        agent = await (await client.post("/api/v1/agents", json={"email": unique_email("a"), "name": "Ada", "role": "agent"})).json()
        group = await client.post("/api/v1/groups", json={"name": f"Tier 2 {uuid.uuid4().hex[:6]}", "agent_ids": [agent["id"]]})
        assert group.status == 201
        group = await group.json()
        assert group["agent_ids"] == [agent["id"]]
        emptied = await (await client.put(f"/api/v1/groups/{group['id']}", json={"agent_ids": []})).json()
        assert emptied["agent_ids"] == []
        unknown = await client.post("/api/v1/groups", json={"name": "ghosts", "agent_ids": [str(uuid.uuid4())]})
        assert unknown.status == 422
        same_name = await client.post("/api/v1/groups", json={"name": group["name"]})
        assert same_name.status == 409
        deactivated = await (await client.put(f"/api/v1/agents/{agent['id']}", json={"active": False})).json()
        assert deactivated["active"] is False
        admins: list[dict] = []  # every active admin: the session's gateways each made one
        params = {"role": "admin", "active": "true", "limit": "100"}
        while True:
            page = await (await client.get("/api/v1/agents", params=params)).json()
            admins += page["agents"]
            if not page.get("next_cursor"):
                break
            params["cursor"] = page["next_cursor"]
        for admin in admins[:-1]:
            await client.put(f"/api/v1/agents/{admin['id']}", json={"role": "agent"})
        last = await client.put(f"/api/v1/agents/{admins[-1]['id']}", json={"active": False})
        assert last.status == 409
        for admin in admins[:-1]:
            await client.put(f"/api/v1/agents/{admin['id']}", json={"role": "admin"})


async def test_macro_is_validated_and_applied_as_one_audited_change(gateway: Running) -> None:
    async with gateway.http() as client:
        bad = await client.post("/api/v1/macros", json={"title": "bad", "actions": [{"field": "status", "value": "exploded"}]})
        assert bad.status == 422
        macro = await (await client.post("/api/v1/macros", json={"title": "Close as fixed", "actions": [
            {"field": "status", "value": "solved"}, {"field": "tags", "value": ["fixed"]},
            {"field": "comment", "value": "Glad it works now!", "public": True},
        ]})).json()
        ticket = await (await client.post("/api/v1/tickets", json={
            "subject": "macro me", "comment": {"body": "x"}, "requester": {"email": unique_email()},
        })).json()
        applied = await client.post(f"/api/v1/tickets/{ticket['id']}/macros/{macro['id']}/apply")
        assert applied.status == 200
        result = await applied.json()
        assert (result["status"], result["tags"]) == ("solved", ["fixed"])
        audits = (await (await client.get(f"/api/v1/tickets/{ticket['id']}/audits")).json())["audits"]
        updates = [a for a in audits if a["action"] == "update"]
        assert len(updates) == 1 and updates[0]["via"] == f"macro:{macro['id']}"
        comments = (await (await client.get(f"/api/v1/tickets/{ticket['id']}/comments")).json())["comments"]
        assert comments[-1]["body"] == "Glad it works now!"


async def test_sla_policies_and_triggers_crud(gateway: Running) -> None:
    async with gateway.http() as client:
        policy = await client.post("/api/v1/sla_policies", json={
            "title": "Urgent first reply", "filter": {"priority": ["urgent"]},
            "metrics": {"first_reply_time": {"urgent": 60, "high": 240}},
        })
        assert policy.status == 201
        policy = await policy.json()
        assert policy["metrics"]["first_reply_time"]["urgent"] == 60
        bad = await client.post("/api/v1/sla_policies", json={"title": "x", "metrics": {"first_reply_time": {"urgent": -5}}})
        assert bad.status == 422
        trigger = await client.post("/api/v1/triggers", json={
            "title": "Tag VIPs", "conditions": {"all": [{"field": "tags", "operator": "contains", "value": "vip"}]},
            "actions": [{"field": "priority", "value": "high"}],
        })
        assert trigger.status == 201
        trigger = await trigger.json()
        paused = await (await client.put(f"/api/v1/triggers/{trigger['id']}", json={"active": False})).json()
        assert paused["active"] is False
        assert (await client.delete(f"/api/v1/triggers/{trigger['id']}")).status == 204
        assert (await client.get(f"/api/v1/triggers/{trigger['id']}")).status == 404
        listed = await (await client.get("/api/v1/sla_policies")).json()
        assert policy["id"] in [p["id"] for p in listed["sla_policies"]]


async def test_tokens_issued_listed_and_revoked(gateway: Running) -> None:
    async with gateway.http() as client:
        issued = await client.post("/api/v1/tokens", json={"name": "ci"})
        assert issued.status == 201
        token = await issued.json()
        assert token["token"].startswith("hd_") and token["prefix"] == token["token"][:10]
        listed = (await (await client.get("/api/v1/tokens")).json())["tokens"]
        assert token["id"] in [t["id"] for t in listed] and all("token" not in t for t in listed)
    async with gateway.http(token["token"]) as other:
        assert (await other.get("/api/v1/groups")).status == 200
        assert (await other.delete(f"/api/v1/tokens/{token['id']}")).status == 204
        assert (await other.get("/api/v1/groups")).status == 401


async def test_idempotency_key_replays_the_first_response(gateway: Running) -> None:
    body = {"subject": "once", "comment": {"body": "x"}, "requester": {"email": unique_email()}}
    key = {"Idempotency-Key": uuid.uuid4().hex}
    async with gateway.http() as client:
        first = await client.post("/api/v1/tickets", json=body, headers=key)
        second = await client.post("/api/v1/tickets", json=body, headers=key)
        assert first.status == second.status == 201
        assert (await first.json())["id"] == (await second.json())["id"]
        assert second.headers.get("Idempotent-Replayed") == "true"
        other = await client.post("/api/v1/tickets", json={**body, "subject": "twice?"}, headers=key)
        assert other.status == 422 and (await other.json())["error"]["code"] == "idempotency_key_reused"
        fresh = await client.post("/api/v1/tickets", json=body, headers={"Idempotency-Key": uuid.uuid4().hex})
        assert (await fresh.json())["id"] != (await first.json())["id"]


async def test_changing_a_customer_email_to_a_taken_one_is_409(gateway: Running) -> None:
    async with gateway.http() as client:
        taken = unique_email()
        await client.post("/api/v1/customers", json={"email": taken})
        other = await (await client.post("/api/v1/customers", json={"email": unique_email()})).json()
        clash = await client.put(f"/api/v1/customers/{other['id']}", json={"email": taken.upper()})
        assert clash.status == 409, await clash.text()


async def test_a_deactivated_agent_is_locked_out_at_once_despite_the_token_cache(gateway: Running) -> None:
    async with gateway.http() as client:
        agent = await (await client.post("/api/v1/agents", json={"email": unique_email("d"), "name": "Dee"})).json()
        async with gateway.db.unit_of_work() as session:  # as `helpdesk token create` does
            token = await agent_service.token_for(session, email=agent["email"], name="Dee", role=AgentRole.agent)
        async with gateway.http(token) as dee:
            assert (await dee.get("/api/v1/groups")).status == 200  # now cached
            await client.put(f"/api/v1/agents/{agent['id']}", json={"active": False})
            assert (await dee.get("/api/v1/groups")).status == 401
