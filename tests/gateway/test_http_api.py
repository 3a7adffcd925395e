"""The HTTP API over a real socket: auth, errors, filters, pagination, downloads, inbound."""

from __future__ import annotations

import asyncio
import smtplib
import uuid
from email.message import EmailMessage

from core.enums import AgentRole
from tests.support.gateway import SUPPORT, Running, crlf, make_settings, queued_id, running_gateway


def customer_mail(subject: str, sender: str, body: str = "body", attachment: bytes | None = None) -> bytes:
    m = EmailMessage()
    m["From"] = sender
    m["To"] = SUPPORT
    m["Subject"] = subject
    m["Message-ID"] = f"<{uuid.uuid4()}@customer.test>"
    m.set_content(body)
    if attachment is not None:
        m.add_attachment(attachment, maintype="application", subtype="pdf", filename="report <1>.pdf")
    return m.as_bytes()


def smtp_data(port: int, raw: bytes, mail_from: str = "x@customer.test") -> bytes:
    """One SMTP transaction; returns the final reply's text."""
    with smtplib.SMTP("127.0.0.1", port) as client:
        client.ehlo("client.test")
        client.mail(mail_from)
        client.rcpt(SUPPORT)
        return client.data(crlf(raw))[1]


async def ticket_from_mail(gw: Running, raw: bytes) -> str:
    inbound = await gw.settled(queued_id(await asyncio.to_thread(smtp_data, gw.smtp_port, raw)))
    assert inbound.ticket_id is not None
    return str(inbound.ticket_id)


async def test_requests_without_a_valid_token_get_401_json(gateway: Running) -> None:
    for token in ("", "hd_not-a-token"):
        async with gateway.http(token) as client:
            response = await client.get("/api/v1/tickets")
            assert response.status == 401
            body = await response.json()
            assert body["error"]["code"] == "unauthorized"
            assert set(body["error"]) == {"code", "message", "fields"}


async def test_ticket_by_uuid_and_by_number_and_404(gateway: Running) -> None:
    ticket_id = await ticket_from_mail(gateway, customer_mail("lookup", "look@customer.test"))
    async with gateway.http() as client:
        by_id = await (await client.get(f"/api/v1/tickets/{ticket_id}")).json()
        by_number = await (await client.get(f"/api/v1/tickets/{by_id['number']}")).json()
        assert by_id == by_number
        assert by_id["subject"] == "lookup" and by_id["channel"] == "email"
        for missing in (str(uuid.uuid4()), "99999999", "not-a-ticket"):
            response = await client.get(f"/api/v1/tickets/{missing}")
            assert response.status == 404
            assert (await response.json())["error"]["code"] == "not_found"


async def test_list_filters_and_validation(gateway: Running) -> None:
    ticket_id = await ticket_from_mail(gateway, customer_mail("filter me", "filter@customer.test"))
    async with gateway.http() as client:
        ticket = await (await client.get(f"/api/v1/tickets/{ticket_id}")).json()
        listed = await (await client.get("/api/v1/tickets", params={"requester_id": ticket["requester_id"]})).json()
        assert [t["id"] for t in listed["tickets"]] == [ticket_id]
        none = await (await client.get("/api/v1/tickets", params={"requester_id": ticket["requester_id"], "status": "solved"})).json()
        assert none["tickets"] == []
        bad = await client.get("/api/v1/tickets", params={"status": "exploded"})
        assert bad.status == 422
        assert "status" in (await bad.json())["error"]["fields"]
        unknown = await client.get("/api/v1/tickets", params={"colour": "blue"})
        assert unknown.status == 422 and "colour" in (await unknown.json())["error"]["fields"]
        cursor = await client.get("/api/v1/tickets", params={"cursor": "garbage!"})
        assert cursor.status == 422 and "cursor" in (await cursor.json())["error"]["fields"]


async def test_cursor_pages_are_stable_while_tickets_arrive(gateway: Running) -> None:
    sender = f"pager-{uuid.uuid4().hex[:6]}@customer.test"
    for i in range(5):
        await ticket_from_mail(gateway, customer_mail(f"page {i}", sender))
    async with gateway.http() as client:
        first = await (await client.get("/api/v1/tickets", params={"limit": "2"})).json()
        requester = first["tickets"][0]["requester_id"]
        params = {"limit": "2", "requester_id": requester}
        seen: list[str] = []
        page = await (await client.get("/api/v1/tickets", params=params)).json()
        seen += [t["subject"] for t in page["tickets"]]
        # a new ticket arriving between pages must not shift or repeat what follows
        await ticket_from_mail(gateway, customer_mail("page late", sender))
        while page["next_cursor"]:
            page = await (await client.get("/api/v1/tickets", params={**params, "cursor": page["next_cursor"]})).json()
            seen += [t["subject"] for t in page["tickets"]]
        assert seen == [f"page {i}" for i in reversed(range(5))]
        clamped = await (await client.get("/api/v1/tickets", params={"limit": "5000"})).json()
        assert len(clamped["tickets"]) <= 100


async def test_comments_carry_attachments_downloadable_as_exact_bytes(gateway: Running) -> None:
    pdf = b"%PDF-1.4\n" + bytes(range(256)) * 40
    ticket_id = await ticket_from_mail(gateway, customer_mail("with pdf", "pdf@customer.test", "see attached", pdf))
    async with gateway.http() as client:
        comments = (await (await client.get(f"/api/v1/tickets/{ticket_id}/comments")).json())["comments"]
        assert [c["body"] for c in comments] == ["see attached"]
        [attachment] = comments[0]["attachments"]
        assert attachment["filename"] == "report <1>.pdf"
        assert attachment["size"] == len(pdf)
        download = await client.get(attachment["url"])
        assert download.status == 200
        assert await download.read() == pdf
        assert download.headers["Content-Disposition"].startswith("attachment;")
        assert download.headers["X-Content-Type-Options"] == "nosniff"
        assert download.headers["Content-Type"] == "application/octet-stream"
        other = await client.get(f"/api/v1/tickets/{ticket_id}/attachments/{uuid.uuid4()}")
        assert other.status == 404


async def test_customer_and_groups(gateway: Running) -> None:
    ticket_id = await ticket_from_mail(gateway, customer_mail("who", "Zoë Example <Zoe@Customer.TEST>"))
    async with gateway.http() as client:
        ticket = await (await client.get(f"/api/v1/tickets/{ticket_id}")).json()
        customer = await (await client.get(f"/api/v1/customers/{ticket['requester_id']}")).json()
        assert customer["email"] == "zoe@customer.test" and customer["name"] == "Zoë Example"
        groups = (await (await client.get("/api/v1/groups")).json())["groups"]
        assert {"Support", "Billing"} <= {g["name"] for g in groups}
        assert ticket["group_id"] in {g["id"] for g in groups if g["name"] == "Support"}
        assert (await client.get(f"/api/v1/customers/{uuid.uuid4()}")).status == 404


async def test_quarantined_inbound_is_listed_with_reason_and_raw_bytes(gateway: Running) -> None:
    raw = b"From: nobody\r\nTo: support@example.com\r\nSubject: quarantine me\r\n\r\nbody\r\n"
    inbound_id = queued_id(await asyncio.to_thread(smtp_data, gateway.smtp_port, raw, ""))
    await gateway.settled(inbound_id)
    async with gateway.http() as client:
        listed = (await (await client.get("/api/v1/inbound", params={"status": "quarantined", "limit": "100"})).json())["inbound"]
        [record] = [r for r in listed if r["id"] == inbound_id]
        assert record["status"] == "quarantined" and "From" in record["reason"]
        download = await client.get(f"/api/v1/inbound/{inbound_id}/raw")
        assert await download.read() == raw
        assert download.headers["Content-Type"].startswith("message/rfc822")


async def test_light_agents_cannot_read_raw_inbound(database_url: str, tmp_path) -> None:
    async with running_gateway(make_settings(database_url, tmp_path), role=AgentRole.light_agent) as gw:
        async with gw.http() as client:
            response = await client.get("/api/v1/inbound")
            assert response.status == 403
            assert (await client.get("/api/v1/groups")).status == 200


async def test_health_readiness_metrics_openapi_and_docs(gateway: Running) -> None:
    await gateway.send(customer_mail("metrics", "metrics@customer.test"))
    async with gateway.http("") as client:
        assert (await (await client.get("/healthz")).json()) == {"status": "ok"}
        assert (await (await client.get("/readyz")).json()) == {"status": "ok"}
        metrics = await (await client.get("/metrics")).text()
        assert "helpdesk_smtp_messages_accepted_total" in metrics
        assert "helpdesk_ingest_latency_seconds_bucket" in metrics
        doc = await (await client.get("/api/v1/openapi.json")).json()
        assert doc["openapi"].startswith("3.")
        assert "/api/v1/tickets/{ticket}" in doc["paths"]
        ticket_schema = doc["components"]["schemas"]["TicketOut"]
        assert {"number", "status", "requester_id", "sla_breach_at"} <= set(ticket_schema["properties"])
        assert "statuses" not in doc["paths"]["/api/v1/tickets"]["get"]
        docs = await client.get("/docs")
        assert docs.status == 200 and "openapi.json" in await docs.text()
        missing = await client.get("/api/v1/nothing-here")
        assert missing.status in (401, 404)
