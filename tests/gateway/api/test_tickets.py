"""Ticket changes over HTTP: create, update, transitions, update_many, merge, delete, comments, audits."""

from __future__ import annotations

import uuid

import aiohttp

from core.enums import AgentRole
from tests.support.gateway import Running, make_settings, running_gateway


def new_ticket_body(**overrides) -> dict:
    body = {
        "subject": "Broken login",
        "comment": {"body": "Customer cannot log in"},
        "requester": {"name": "Rita", "email": f"rita-{uuid.uuid4().hex[:6]}@customer.test"},
    }
    body.update(overrides)
    return body


async def create(client: aiohttp.ClientSession, **overrides) -> dict:
    response = await client.post("/api/v1/tickets", json=new_ticket_body(**overrides))
    assert response.status == 201, await response.text()
    return await response.json()


async def test_create_with_new_requester_then_by_requester_id(gateway: Running) -> None:
    async with gateway.http() as client:
        ticket = await create(client, priority="high", tags=["Login", "vip", "login"])
        assert (ticket["status"], ticket["priority"], ticket["channel"]) == ("new", "high", "api")
        assert ticket["tags"] == ["login", "vip"]
        again = await create(client, requester=None, requester_id=ticket["requester_id"])
        assert again["requester_id"] == ticket["requester_id"] and again["number"] > ticket["number"]
        comments = (await (await client.get(f"/api/v1/tickets/{ticket['id']}/comments")).json())["comments"]
        assert [(c["body"], c["author_type"]) for c in comments] == [("Customer cannot log in", "agent")]


async def test_bad_input_is_422_naming_the_field_and_bad_json_400(gateway: Running) -> None:
    async with gateway.http() as client:
        cases = [
            (new_ticket_body(status="exploded"), "status"),
            (new_ticket_body(requester={"email": "not-an-address"}), "requester.email"),
            (new_ticket_body(is_admin=True), "is_admin"),
            (new_ticket_body(subject=""), "subject"),
            (new_ticket_body(tags=["has space"]), "tags"),
            (new_ticket_body(requester_id=str(uuid.uuid4()), requester=None), "requester_id"),
            (new_ticket_body(assignee_id=str(uuid.uuid4())), "assignee_id"),
        ]
        for body, field in cases:
            response = await client.post("/api/v1/tickets", json=body)
            assert response.status == 422, (field, await response.text())
            error = (await response.json())["error"]
            assert error["code"] == "validation_failed"
            assert any(name.startswith(field) for name in error["fields"]), (field, error)
        malformed = await client.post("/api/v1/tickets", data=b"{nope", headers={"Content-Type": "application/json"})
        assert malformed.status == 400 and (await malformed.json())["error"]["code"] == "malformed_json"
        not_object = await client.post("/api/v1/tickets", json=[1, 2])
        assert not_object.status == 422


async def test_status_transitions_solved_at_and_closed_is_final(gateway: Running) -> None:
    async with gateway.http() as client:
        ticket = await create(client)
        url = f"/api/v1/tickets/{ticket['id']}"
        solved = await (await client.put(url, json={"status": "solved"})).json()
        assert solved["status"] == "solved" and solved["solved_at"] is not None
        reopened = await (await client.put(url, json={"status": "open"})).json()
        assert reopened["solved_at"] is None
        back_to_new = await client.put(url, json={"status": "new"})
        assert back_to_new.status == 422 and "status" in (await back_to_new.json())["error"]["fields"]
        await client.put(url, json={"status": "closed"})
        frozen = await client.put(url, json={"priority": "low"})
        assert frozen.status == 409
        null_subject = await client.put(f"/api/v1/tickets/{(await create(client))['id']}", json={"subject": None})
        assert null_subject.status == 422


async def test_update_with_comment_sets_first_response_and_writes_one_audit(gateway: Running) -> None:
    async with gateway.http() as client:
        ticket = await create(client)
        url = f"/api/v1/tickets/{ticket['id']}"
        agents = await (await client.get("/api/v1/groups")).json()
        group_id = agents["groups"][0]["id"]
        updated = await (await client.put(url, json={
            "status": "pending", "group_id": group_id, "comment": {"body": "We are looking into it"},
        })).json()
        assert updated["status"] == "pending" and updated["first_response_at"] is not None
        audits = (await (await client.get(f"{url}/audits")).json())["audits"]
        actions = [a["action"] for a in audits]
        assert actions[0] == "create" and actions.count("update") == 1 and "comment" in actions
        update = next(a for a in audits if a["action"] == "update")
        assert update["changes"]["status"] == {"from": "new", "to": "pending"}
        assert update["changes"]["group_id"]["to"] == group_id


async def test_update_many_is_all_or_nothing(gateway: Running) -> None:
    async with gateway.http() as client:
        a, b = await create(client), await create(client)
        ok = await client.put("/api/v1/tickets/update_many", json={"ids": [a["id"], str(b["number"])], "changes": {"priority": "urgent"}})
        assert ok.status == 200
        assert {t["priority"] for t in (await ok.json())["tickets"]} == {"urgent"}
        bad = await client.put("/api/v1/tickets/update_many", json={"ids": [a["id"], str(uuid.uuid4())], "changes": {"priority": "low"}})
        assert bad.status == 422 and "ids.1" in (await bad.json())["error"]["fields"]
        assert (await (await client.get(f"/api/v1/tickets/{a['id']}")).json())["priority"] == "urgent"
        # one of them closed: the whole batch is refused and nothing changes
        await client.put(f"/api/v1/tickets/{b['id']}", json={"status": "closed"})
        refused = await client.put("/api/v1/tickets/update_many", json={"ids": [a["id"], b["id"]], "changes": {"priority": "low"}})
        assert refused.status == 409
        assert (await (await client.get(f"/api/v1/tickets/{a['id']}")).json())["priority"] == "urgent"
        too_many = await client.put("/api/v1/tickets/update_many", json={"ids": [a["id"]] * 101, "changes": {}})
        assert too_many.status == 422


async def test_merge_closes_sources_and_keeps_their_conversation(gateway: Running) -> None:
    async with gateway.http() as client:
        target, source = await create(client), await create(client, subject="Same problem")
        merged = await client.post(f"/api/v1/tickets/{target['id']}/merge", json={"ids": [source["id"]]})
        assert merged.status == 200, await merged.text()
        closed = await (await client.get(f"/api/v1/tickets/{source['id']}")).json()
        assert closed["status"] == "closed"
        bodies = [c["body"] for c in (await (await client.get(f"/api/v1/tickets/{target['id']}/comments")).json())["comments"]]
        assert "Customer cannot log in" in bodies and f"Merged into #{target['number']}." in bodies
        again = await client.post(f"/api/v1/tickets/{target['id']}/merge", json={"ids": [source["id"]]})
        assert again.status == 422
        itself = await client.post(f"/api/v1/tickets/{target['id']}/merge", json={"ids": [target["id"]]})
        assert itself.status == 422


async def test_soft_delete_hides_the_ticket(gateway: Running) -> None:
    async with gateway.http() as client:
        ticket = await create(client)
        assert (await client.delete(f"/api/v1/tickets/{ticket['id']}")).status == 204
        assert (await client.get(f"/api/v1/tickets/{ticket['id']}")).status == 404
        assert (await client.delete(f"/api/v1/tickets/{ticket['id']}")).status == 404


async def test_comments_json_and_multipart_with_attachments(gateway: Running) -> None:
    async with gateway.http() as client:
        ticket = await create(client)
        url = f"/api/v1/tickets/{ticket['id']}/comments"
        internal = await client.post(url, json={"body": "note to self", "visibility": "internal"})
        assert internal.status == 201 and (await internal.json())["visibility"] == "internal"
        form = aiohttp.FormData()
        form.add_field("body", "see the log")
        form.add_field("attachments", b"\x00log bytes\xff", filename="server.log", content_type="text/plain")
        uploaded = await client.post(url, data=form)
        assert uploaded.status == 201, await uploaded.text()
        [attachment] = (await uploaded.json())["attachments"]
        assert attachment["filename"] == "server.log"
        assert await (await client.get(attachment["url"])).read() == b"\x00log bytes\xff"
        empty = await client.post(url, json={"body": ""})
        assert empty.status == 422 and "body" in (await empty.json())["error"]["fields"]


async def test_light_agent_may_only_add_internal_comments(database_url: str, tmp_path) -> None:
    async with running_gateway(make_settings(database_url, tmp_path)) as admin:
        async with admin.http() as client:
            ticket = await create(client)
    async with running_gateway(make_settings(database_url, tmp_path), role=AgentRole.light_agent) as light:
        async with light.http() as client:
            url = f"/api/v1/tickets/{ticket['id']}/comments"
            assert (await client.post(url, json={"body": "public?"})).status == 403
            assert (await client.post(url, json={"body": "internal", "visibility": "internal"})).status == 201
            assert (await client.put(f"/api/v1/tickets/{ticket['id']}", json={"priority": "low"})).status == 403
            assert (await client.get(f"/api/v1/tickets/{ticket['id']}")).status == 200


async def test_list_by_tags_and_sorted_by_update(gateway: Running) -> None:
    tag = f"t{uuid.uuid4().hex[:8]}"
    async with gateway.http() as client:
        a = await create(client, tags=[tag, "vip"])
        b = await create(client, tags=[tag])
        c = await create(client, tags=[tag, "vip"])
        both = await (await client.get("/api/v1/tickets", params={"tags": f"{tag},VIP"})).json()
        assert [t["id"] for t in both["tickets"]] == [c["id"], a["id"]]
        await client.put(f"/api/v1/tickets/{a['id']}", json={"priority": "high"})  # a is now the freshest
        params = {"tags": tag, "sort": "-updated_at", "limit": "2"}
        page = await (await client.get("/api/v1/tickets", params=params)).json()
        ids = [t["id"] for t in page["tickets"]]
        rest = await (await client.get("/api/v1/tickets", params={**params, "cursor": page["next_cursor"]})).json()
        assert ids + [t["id"] for t in rest["tickets"]] == [a["id"], c["id"], b["id"]]
        oldest_first = await (await client.get("/api/v1/tickets", params={"tags": tag, "sort": "created_at"})).json()
        assert [t["id"] for t in oldest_first["tickets"]] == [a["id"], b["id"], c["id"]]
        high = await (await client.get("/api/v1/tickets", params={"tags": tag, "priority": "high", "status": "new"})).json()
        assert [t["id"] for t in high["tickets"]] == [a["id"]]  # enum filters, combined
        bad = await client.get("/api/v1/tickets", params={"sort": "subject"})
        assert bad.status == 422 and "sort" in (await bad.json())["error"]["fields"]


async def test_unstorable_text_is_422_not_500(gateway: Running) -> None:
    async with gateway.http() as client:
        for raw in (b'{"subject": "x\\udab4", "comment": {"body": "b"}, "requester": {"email": "a@b.test"}}',
                    b'{"subject": "x\\u0000", "comment": {"body": "b"}, "requester": {"email": "a@b.test"}}'):
            response = await client.post("/api/v1/tickets", data=raw, headers={"Content-Type": "application/json"})
            assert response.status == 422, await response.text()


async def test_created_solved_has_solved_at(gateway: Running) -> None:
    async with gateway.http() as client:
        ticket = await create(client, status="solved")
        assert ticket["status"] == "solved" and ticket["solved_at"] is not None


async def test_a_posted_comment_is_one_change_with_its_audit_and_event(gateway: Running) -> None:
    from sqlalchemy import select

    from core.events import TOPIC_COMMENTED, OutboxEvent

    async with gateway.http() as client:
        ticket = await create(client)
        url = f"/api/v1/tickets/{ticket['number']}/comments"  # by number, as agents type it
        internal = await client.post(url, json={"body": "note to self", "visibility": "internal"})
        assert internal.status == 201
        after_internal = await (await client.get(f"/api/v1/tickets/{ticket['id']}")).json()
        assert after_internal["first_response_at"] is None
        assert after_internal["updated_at"] > ticket["updated_at"]

        first = await client.post(url, json={"body": "We are on it"})
        assert first.status == 201
        posted = await first.json()
        assert posted["body"] == "We are on it" and posted["visibility"] == "public"
        assert posted["ticket_id"] == ticket["id"] and posted["attachments"] == []
        answered = await (await client.get(f"/api/v1/tickets/{ticket['id']}")).json()
        assert answered["first_response_at"] is not None
        await client.post(url, json={"body": "Still on it"})
        again = await (await client.get(f"/api/v1/tickets/{ticket['id']}")).json()
        assert again["first_response_at"] == answered["first_response_at"]  # the first stays

        listed = (await (await client.get(url)).json())["comments"]
        assert [c["body"] for c in listed][-3:] == ["note to self", "We are on it", "Still on it"]
        assert posted in listed
        audits = (await (await client.get(f"/api/v1/tickets/{ticket['id']}/audits")).json())["audits"]
        comment_audits = [a for a in audits if a["action"] == "comment"]
        assert len(comment_audits) == 4  # the description's, then these three
        assert {"id": posted["id"], "visibility": "public"} in [a["changes"]["comment"] for a in comment_audits]

        retried = [await client.post(url, json={"body": "once"}, headers={"Idempotency-Key": "k-once"})
                   for _ in range(2)]
        assert [r.status for r in retried] == [201, 201]
        assert (await retried[0].json()) == (await retried[1].json())
        bodies = [c["body"] for c in (await (await client.get(url)).json())["comments"]]
        assert bodies.count("once") == 1

        assert (await client.post("/api/v1/tickets/999999999/comments", json={"body": "x"})).status == 404
        await client.put(f"/api/v1/tickets/{ticket['id']}", json={"status": "closed"})
        assert (await client.post(url, json={"body": "too late"})).status == 409

    async with gateway.db.unit_of_work() as session:
        events = [e.payload for e in await session.scalars(select(OutboxEvent).where(
            OutboxEvent.key == ticket["id"], OutboxEvent.topic == TOPIC_COMMENTED))]
    mine = next(e for e in events if e["comment"]["id"] == posted["id"])
    assert mine["type"] == "commented" and mine["via"] == "api"
    assert mine["comment"]["author_type"] == "agent" and mine["comment"]["body"] == "We are on it"
    assert mine["ticket"]["id"] == ticket["id"] and mine["ticket"]["first_response_at"] is not None
    assert len(events) == 4  # internal, two public, the retried one once; none for the refused
