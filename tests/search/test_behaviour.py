"""What an agent gets from search, over real HTTP, on every backend (see conftest: `searching`).

Each test tags its tickets with a tag of its own and narrows its queries with it, so tests
sharing the session's database never see each other's tickets.
"""

from __future__ import annotations

import asyncio

from core.agents.service import agent_service
from core.enums import AgentRole
from tests.search.support import create_ticket, indexed, numbers, search, unique
from tests.support.gateway import Running


async def test_words_are_found_in_every_part_of_a_ticket(searching: Running) -> None:
    tag = unique()
    async with searching.http() as client:
        by_subject = await create_ticket(client, "Invoice overdue", "Please check", tags=[tag])
        by_body = await create_ticket(client, "Question", "My parcel never arrived", tags=[tag])
        by_comment = await create_ticket(client, "Question", "Hello", tags=[tag])
        by_note = await create_ticket(client, "Question", "Hello", tags=[tag])
        by_name = await create_ticket(
            client, "Question", "Hello", tags=[tag],
            requester={"name": "Zebulon Quartermaine", "email": f"{unique('z')}@example.net"},
        )
        by_address = await create_ticket(
            client, "Question", "Hello", tags=[tag], requester={"email": f"{tag}@wholesale.example"},
        )
        by_tag = await create_ticket(client, "Question", "Hello", tags=[tag, "vipcustomer"])
        await client.post(f"/api/v1/tickets/{by_comment['id']}/comments", json={"body": "The gasket leaks"})
        await client.post(f"/api/v1/tickets/{by_note['id']}/comments",
                          json={"body": "Escalated to logistics", "visibility": "internal"})
        await indexed(searching)
        expectations = {
            "invoice": by_subject, "parcel": by_body, "gasket": by_comment, "logistics": by_note,
            "quartermaine": by_name, "wholesale": by_address, "vipcustomer": by_tag,
        }
        for word, ticket in expectations.items():
            assert await numbers(client, f"{word} tags:{tag}") == [ticket["number"]], word


async def test_subject_ranks_above_body_and_newer_above_older(searching: Running) -> None:
    tag = unique()
    async with searching.http() as client:
        body_only = await create_ticket(client, "Question", "the espresso machine, the espresso beans", tags=[tag])
        in_subject = await create_ticket(client, "Espresso machine", "It does not heat", tags=[tag])
        older = await create_ticket(client, "Grinder", "noise from the grinder", tags=[tag])
        newer = await create_ticket(client, "Grinder", "noise from the grinder", tags=[tag])
        await indexed(searching)
        assert await numbers(client, f"espresso tags:{tag}") == [in_subject["number"], body_only["number"]]
        assert await numbers(client, f"grinder tags:{tag}") == [newer["number"], older["number"]]


async def test_case_accents_typos_prefix_and_phrases(searching: Running) -> None:
    tag = unique()
    async with searching.http() as client:
        cafe = await create_ticket(client, "CAFÉ order", "two crèmes brûlées", tags=[tag])
        quasar = await create_ticket(client, "Telescope", "pointed at a quasar", tags=[tag])
        marzipan = await create_ticket(client, "Bakery", "marzipan for the cake", tags=[tag])
        phrase = await create_ticket(client, "Refund", "please issue a credit note today", tags=[tag])
        scattered = await create_ticket(client, "Refund", "note that your credit is fine", tags=[tag])
        await indexed(searching)
        assert await numbers(client, f"cafe tags:{tag}") == [cafe["number"]]
        assert await numbers(client, f"Café tags:{tag}") == [cafe["number"]]
        assert await numbers(client, f"tags:{tag} brulees") == [cafe["number"]]
        assert await numbers(client, f"tags:{tag} quasr") == [quasar["number"]]  # one letter missing
        assert await numbers(client, f"tags:{tag} qausar") == [quasar["number"]]  # two swapped
        assert await numbers(client, f"tags:{tag} marzip") == [marzipan["number"]]  # last word: prefix
        assert await numbers(client, f"marzip cake tags:{tag}") == []  # not the last word: whole
        assert await numbers(client, f'tags:{tag} "credit note"') == [phrase["number"]]
        assert sorted(await numbers(client, f"tags:{tag} credit note")) == sorted(
            [phrase["number"], scattered["number"]]
        )
        assert await numbers(client, f"tags:{tag} credit -fine") == [phrase["number"]]
        assert await numbers(client, f'tags:{tag} note -"credit note"') == [scattered["number"]]


async def test_short_words_forgive_no_typo(searching: Running) -> None:
    tag = unique()
    async with searching.http() as client:
        await create_ticket(client, "Lamp", "the lamp is off", tags=[tag])
        await indexed(searching)
        assert await numbers(client, f"lmap tags:{tag}") == []


async def test_qualifiers_negation_and_or(searching: Running) -> None:
    tag = unique()
    async with searching.http() as client:
        agent = await (await client.post("/api/v1/agents", json={
            "email": f"{tag}@agents.test", "name": "Ann", "role": "agent",
        })).json()
        group = await (await client.post("/api/v1/groups", json={
            "name": f"Level {tag}", "agent_ids": [agent["id"]],
        })).json()
        org = await (await client.post("/api/v1/organizations", json={
            "name": f"Acme {tag}", "domains": [f"{tag}.example"],
        })).json()
        assert "id" in org and "id" in agent, (org, agent)
        urgent = await create_ticket(
            client, "Server down", "all of it", tags=[tag], priority="urgent", type="incident",
            assignee_id=agent["id"], group_id=group["id"],
            requester={"email": f"boss@{tag}.example", "name": "Boss"},
        )
        perf = unique("perf")
        high = await create_ticket(client, "Slow", "pages are slow", tags=[tag, perf], priority="high")
        low = await create_ticket(client, "Typo", "on the about page", tags=[tag], priority="low")
        await client.put(f"/api/v1/tickets/{low['id']}", json={"status": "pending"})
        await indexed(searching)
        n = {t["number"]: k for k, t in {"urgent": urgent, "high": high, "low": low}.items()}

        async def names(q: str) -> list[str]:
            return sorted(n[x] for x in await numbers(client, f"{q} tags:{tag}"))

        assert await names("priority>normal") == ["high", "urgent"]
        assert await names("priority>=high priority<urgent") == ["high"]
        assert await names("priority:low priority:urgent") == ["low", "urgent"]
        assert await names("-priority:urgent") == ["high", "low"]
        assert await names("status:pending") == ["low"]
        assert await names("status:new status:pending") == ["high", "low", "urgent"]
        assert await names("status<pending") == ["high", "urgent"]
        assert await names("type:incident") == ["urgent"]
        assert await names("channel:api") == ["high", "low", "urgent"]
        assert await numbers(client, f"tags:{perf}") == [high["number"]]
        assert sorted(await numbers(client, f"tags:{perf} tags:{tag}")) == sorted(n)  # values OR together
        assert await names(f"-tags:{perf}") == ["low", "urgent"]
        assert await names(f"assignee:{tag}@agents.test") == ["urgent"]
        assert await names("assignee:none") == ["high", "low"]
        assert await names(f'group:"Level {tag}"') == ["urgent"]
        assert await names("group:none") == ["high", "low"]
        assert await names(f"requester:boss@{tag}.example") == ["urgent"]
        assert await names(f"organization:{tag}.example") == ["urgent"]
        assert await names(f'organization:"Acme {tag}"') == ["urgent"]
        assert await names("created>1h") == ["high", "low", "urgent"]
        assert await names("created<1h") == []
        assert await names("created>2000-01-01 updated<2100-01-01") == ["high", "low", "urgent"]
        assert await names("solved>7d") == []
        unknown = await search(client, f"group:nosuchgroup{tag}")
        assert unknown["results"] == [] and unknown["warnings"]


async def test_facets_count_every_match_not_just_the_page(searching: Running) -> None:
    tag = unique()
    async with searching.http() as client:
        for priority in ("low", "high", "high", "urgent"):
            await create_ticket(client, "Printer jam", "paper stuck", tags=[tag], priority=priority)
        await indexed(searching)
        found = await search(client, f"printer tags:{tag}", limit=1)
        assert found["count"] == 4 and len(found["results"]) == 1
        assert found["facets"]["priority"] == {"low": 1, "high": 2, "urgent": 1}
        assert found["facets"]["status"] == {"new": 4}
        assert found["facets"]["channel"] == {"api": 4}
        assert found["facets"]["group"] == {"none": 4}
        assert found["count_approximate"] is False


async def test_cursor_pages_through_everything_once(searching: Running) -> None:
    tag = unique()
    async with searching.http() as client:
        made = {(await create_ticket(client, f"Widget {i}", "widget broken", tags=[tag]))["number"]
                for i in range(23)}
        await indexed(searching)
        for q in (f"widget tags:{tag}", f"tags:{tag}"):
            seen: list[int] = []
            cursor = None
            while True:
                params = {"limit": 5} | ({"cursor": cursor} if cursor else {})
                page = await search(client, q, **params)
                seen += [r["number"] for r in page["results"]]
                cursor = page["next_cursor"]
                if cursor is None:
                    break
            assert sorted(seen) == sorted(made) and len(seen) == len(set(seen)), q
        other = await search(client, f"gadget tags:{tag}", cursor=cursor or "x", status=422)
        assert "cursor" in other["error"]["fields"]


async def test_highlights_escape_everything_but_the_marks(searching: Running) -> None:
    tag = unique()
    async with searching.http() as client:
        await create_ticket(client, "<script>alert('owned')</script> kiwi", "kiwi & <b>melon</b>", tags=[tag])
        await indexed(searching)
        subject_hit = (await search(client, f"kiwi tags:{tag}"))["results"][0]["highlight"]
        assert "<mark>kiwi</mark>" in subject_hit.lower()
        assert "<script>" not in subject_hit and "&lt;script&gt;" in subject_hit
        body_hit = (await search(client, f"melon tags:{tag}"))["results"][0]["highlight"]
        assert "<b>" not in body_hit and "&lt;b&gt;" in body_hit and "&amp;" in body_hit
        assert "<mark>melon</mark>" in body_hit
        stripped = body_hit.replace("<mark>", "").replace("</mark>", "")
        assert "<" not in stripped and ">" not in stripped


async def test_snippets_come_from_where_the_words_are_in_long_conversations(searching: Running) -> None:
    """A match thousands of characters into a conversation, written in capitals or with accents
    the query leaves out, is the part of the text its snippet shows."""
    tag = unique()
    filler = " ".join(f"nothing{i % 97} to see here." for i in range(900))  # ~18,000 characters
    async with searching.http() as client:
        ticket = await create_ticket(client, "Question", filler, tags=[tag])
        await client.post(f"/api/v1/tickets/{ticket['id']}/comments",
                          json={"body": filler + " The KUMQUAT arrived bruised at the Café Noir. " + filler})
        await indexed(searching)
        for q, marked in (("kumquat", "<mark>KUMQUAT</mark>"), ("cafe noir", "<mark>Café</mark>"),
                          ('"cafe noir"', "<mark>Café</mark>"), ("bruise", "<mark>bruised</mark>")):
            hit = (await search(client, f"{q} tags:{tag}"))["results"][0]["highlight"]
            assert marked in hit, (q, hit)
            assert len(hit) < 600, (q, len(hit))


async def test_deleted_vanish_merged_show_closed_and_changes_follow(searching: Running) -> None:
    tag = unique()
    async with searching.http() as client:
        doomed = await create_ticket(client, "Flamingo", "pink bird", tags=[tag])
        source = await create_ticket(client, "Flamingo", "another pink bird", tags=[tag])
        target = await create_ticket(client, "Flamingo", "the main one", tags=[tag])
        await indexed(searching)
        assert len(await numbers(client, f"flamingo tags:{tag}")) == 3
        await client.delete(f"/api/v1/tickets/{doomed['id']}")
        merged = await client.post(f"/api/v1/tickets/{target['id']}/merge", json={"ids": [source["id"]]})
        assert merged.status == 200, await merged.text()
        await client.put(f"/api/v1/tickets/{target['id']}", json={"subject": "Heron", "priority": "high"})
        await indexed(searching)
        found = {r["number"]: r for r in (await search(client, f"tags:{tag}"))["results"]}
        assert doomed["number"] not in found
        assert found[source["number"]]["status"] == "closed"
        assert await numbers(client, f"heron priority:high tags:{tag}") == [target["number"]]
        assert await numbers(client, f"status:closed tags:{tag}") == [source["number"]]


async def test_a_renamed_customer_is_found_by_the_new_name(searching: Running) -> None:
    tag = unique()
    async with searching.http() as client:
        ticket = await create_ticket(client, "Question", "Hello", tags=[tag])
        await indexed(searching)  # the document holds the old name first
        await client.put(f"/api/v1/customers/{ticket['requester_id']}", json={"name": "Philippa Wolstencroft"})
        await indexed(searching)
        assert await numbers(client, f"wolstencroft tags:{tag}") == [ticket["number"]]


async def test_a_reply_by_mail_is_searchable_soon_after_its_250(searching: Running) -> None:
    tag = unique()
    sender = f"{tag}@customer.test"
    first = (
        f"From: Pat <{sender}>\r\nTo: support@example.com\r\nSubject: Kettle\r\n"
        f"Message-ID: <{tag}-1@customer.test>\r\n\r\nMy kettle whistles.\r\n"
    )
    await searching.send(first, mail_from=sender)
    async with searching.http() as client:
        ticket = (await eventually(client, f"requester:{sender}"))[0]
        reply = (
            f"From: Pat <{sender}>\r\nTo: support@example.com\r\nSubject: Re: [#{ticket['number']}] Kettle\r\n"
            f"In-Reply-To: <{tag}-1@customer.test>\r\nMessage-ID: <{tag}-2@customer.test>\r\n\r\n"
            f"Also the descaler {tag}zz smells.\r\n"
        )
        await searching.send(reply, mail_from=sender)
        found = await eventually(client, f"{tag}zz")
        assert [r["number"] for r in found] == [ticket["number"]]


async def eventually(client, q: str, timeout: float = 15.0) -> list[dict]:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (found := (await search(client, q))["results"]):
        assert loop.time() < deadline, f"nothing found for {q!r} after {timeout}s"
        await asyncio.sleep(0.05)
    return found


async def test_light_agents_search_internal_notes_too(searching: Running) -> None:
    tag = unique()
    async with searching.http() as client:
        ticket = await create_ticket(client, "Question", "Hello", tags=[tag])
        await client.post(f"/api/v1/tickets/{ticket['id']}/comments",
                          json={"body": "internal pangolin remark", "visibility": "internal"})
    async with searching.db.unit_of_work() as session:  # as `helpdesk token create` does
        token = await agent_service.token_for(
            session, email=f"{tag}@agents.test", name="Lee", role=AgentRole.light_agent
        )
    await indexed(searching)
    async with searching.http(token) as light:
        assert await numbers(light, f"pangolin tags:{tag}") == [ticket["number"]]


async def test_hostile_queries_get_an_answer_never_a_500(searching: Running) -> None:
    tag = unique()
    async with searching.http() as client:
        secret = await create_ticket(client, "Secret", "classified", tags=[tag], priority="urgent")
        await indexed(searching)
        hostile = [
            '"unbalanced', "x" * 5000, "a\x00b", "(" * 500, 'status:open" OR 1=1', "foo:bar",
            "created>yesterday", "status:", "priority>bogus", "')); DROP TABLE tickets; --",
            "tags:" + "," * 300, "-", '""', "*", "%_\\", "a:b:c:d", "priority:urgent) OR (1=1",
            " ".join(["word"] * 40), "\u202e\ufeffcafe", "\ud800".encode("utf-8", "surrogatepass").decode("utf-8", "replace"),
            "status:open status:open status:open", "created>99999999d", "created>2026-13-45",
        ]
        for q in hostile:
            response = await client.get("/api/v1/search", params={"q": q})
            assert response.status in (200, 422), (q, response.status, await response.text())
            body = await response.json()
            if response.status == 422:
                assert body["error"]["fields"], q
        # a value never reaches another field: no injection makes the secret appear
        found = await numbers(client, f'status:solved" OR priority:urgent tags:{tag}')
        assert secret["number"] not in found
        assert (await client.get("/api/v1/search")).status == 422
        assert (await client.get("/api/v1/search", params={"q": "x", "type": "user"})).status == 422


async def test_customers_by_partial_name_or_address(searching: Running) -> None:
    tag = unique()
    async with searching.http() as client:
        made = await client.post("/api/v1/customers", json={
            "email": f"jose.{tag}@Example.org", "name": "José Ñúñez",
        })
        customer = await made.json()
        found = await search(client, f"nunez {tag}", type="customer")
        assert [r["id"] for r in found["results"]] == [customer["id"]]
        hit = found["results"][0]
        assert hit["result_type"] == "customer" and "<mark>Ñúñez</mark>" in hit["highlight"]
        assert f"<mark>{tag}</mark>" in hit["highlight"]
        assert (await search(client, f"jose.{tag[:6]}", type="customer"))["count"] >= 1
        assert (await search(client, f"zz{tag}", type="customer"))["results"] == []


async def test_ticket_list_takes_q_with_its_own_filters(searching: Running) -> None:
    tag = unique()
    async with searching.http() as client:
        high = await create_ticket(client, "Toaster", "burns toast", tags=[tag], priority="high")
        await create_ticket(client, "Toaster", "burns toast", tags=[tag], priority="low")
        await indexed(searching)
        response = await client.get("/api/v1/tickets", params={"q": f"toaster tags:{tag}", "priority": "high"})
        body = await response.json()
        assert response.status == 200 and set(body) == {"tickets", "next_cursor"}
        assert [t["number"] for t in body["tickets"]] == [high["number"]]
        assert "score" not in body["tickets"][0]
        bad = await client.get("/api/v1/tickets", params={"q": "status:exploded"})
        assert bad.status == 422 and "q" in (await bad.json())["error"]["fields"]


async def test_a_cursor_of_no_one_is_a_422_on_every_list(searching: Running) -> None:
    async with searching.http() as client:
        for url in ("/api/v1/tickets", "/api/v1/groups", "/api/v1/triggers"):
            for cursor in ("", "a", "not-base64!"):
                response = await client.get(url, params={"cursor": cursor})
                assert response.status == 422, (url, cursor, response.status)
                assert "cursor" in (await response.json())["error"]["fields"]


async def test_an_erased_customer_is_not_found_any_more(searching: Running) -> None:
    tag = unique()
    async with searching.http() as client:
        ticket = await create_ticket(
            client, "Question", "my zanzibarian parrot", tags=[tag],
            requester={"email": f"{tag}@erase.example", "name": "Ottoline Quagmire"},
        )
        await indexed(searching)
        assert await numbers(client, f"quagmire tags:{tag}") == [ticket["number"]]
        erased = await client.delete(f"/api/v1/customers/{ticket['requester_id']}")
        assert erased.status == 200, await erased.text()
        await indexed(searching)
        assert await numbers(client, f"quagmire tags:{tag}") == []
        assert await numbers(client, f"zanzibarian tags:{tag}") == []
        assert await numbers(client, f"tags:{tag}") == [ticket["number"]]  # the ticket is kept
        found = await search(client, f"{tag}", type="customer")
        assert found["results"] == []
