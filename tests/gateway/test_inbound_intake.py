"""Mail that arrives other than over SMTP: POST /inbound, reprocess, `helpdesk import-mbox`."""

from __future__ import annotations

import asyncio
import mailbox
import os
import subprocess
import sys
import uuid
from email.message import EmailMessage
from pathlib import Path

from sqlalchemy import func, select

from core.enums import InboundStatus
from core.tickets.models import Ticket
from tests.support.gateway import SUPPORT, Running


def message(subject: str, to: str = SUPPORT, sender: str = "api@customer.test") -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = sender, to, subject
    m["Message-ID"] = f"<{uuid.uuid4().hex}@customer.test>"
    m.set_content("sent through the API")
    return m.as_bytes()


async def test_post_inbound_feeds_the_same_pipeline(gateway: Running) -> None:
    async with gateway.http() as client:
        response = await client.post("/api/v1/inbound", data=message("via api"),
                                     headers={"Content-Type": "message/rfc822"})
        assert response.status == 202
        accepted = await response.json()
    inbound = await gateway.settled(accepted["id"])
    assert inbound.status is InboundStatus.processed and inbound.source == "api"
    async with gateway.db.unit_of_work() as session:
        ticket = await session.get(Ticket, inbound.ticket_id)
    assert ticket.subject == "via api"


async def test_post_inbound_names_what_is_wrong(gateway: Running) -> None:
    async with gateway.http() as client:
        empty = await client.post("/api/v1/inbound", data=b"")
        assert empty.status == 422 and "body" in (await empty.json())["error"]["fields"]
        elsewhere = await client.post("/api/v1/inbound", data=message("x", to="someone@else.test"))
        assert elsewhere.status == 422 and "recipient" in (await elsewhere.json())["error"]["fields"]
        bad_rcpt = await client.post("/api/v1/inbound", params={"recipient": "x@else.test"}, data=message("x"))
        assert bad_rcpt.status == 422
        explicit = await client.post("/api/v1/inbound", params={"recipient": "billing@example.com"},
                                     data=message("to billing", to="someone@else.test"))
        assert explicit.status == 202


async def test_reprocess_only_quarantined_messages(gateway: Running) -> None:
    raw = b"From: a@b.test, c@d.test\r\nTo: support@example.com\r\nSubject: two senders\r\n\r\nhi\r\n"
    async with gateway.http() as client:
        accepted = await (await client.post("/api/v1/inbound", data=raw)).json()
        first = await gateway.settled(accepted["id"])
        assert first.status is InboundStatus.quarantined
        again = await client.post(f"/api/v1/inbound/{first.id}/reprocess")
        assert again.status == 202
        second = await gateway.settled(first.id)
        assert second.status is InboundStatus.quarantined and second.processed_at >= first.processed_at

        ok = await (await client.post("/api/v1/inbound", data=message("fine"))).json()
        await gateway.settled(ok["id"])
        refused = await client.post(f"/api/v1/inbound/{ok['id']}/reprocess")
        assert refused.status == 409
        assert (await client.post(f"/api/v1/inbound/{uuid.uuid4()}/reprocess")).status == 404


def run_cli(*args: str, database_url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "HELPDESK_DATABASE_URL": database_url, "HELPDESK_DATA_DIR": str(cwd / "data")}
    return subprocess.run(
        [sys.executable, "-m", "gateway", *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=120
    )


async def test_import_mbox_twice_adds_nothing_the_second_time(database_url: str, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    box = mailbox.mbox(tmp_path / "old.mbox")
    first = message(f"mbox {tag} one")
    for raw in (first, message(f"mbox {tag} two"), first, message(f"mbox {tag} three", to="billing@example.com")):
        box.add(raw)
    box.flush()

    result = await asyncio.to_thread(run_cli, "import-mbox", str(tmp_path / "old.mbox"), database_url=database_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "4 messages: 3 tickets, 0 comments, 1 duplicate, 0 quarantined; no mail was sent" in result.stdout
    again = await asyncio.to_thread(run_cli, "import-mbox", str(tmp_path / "old.mbox"), database_url=database_url, cwd=tmp_path)
    assert "4 messages: 0 tickets, 0 comments, 4 duplicates, 0 quarantined" in again.stdout
    assert "reading: 4/4" in result.stderr  # plain progress lines when not on a terminal

    from core.db import Database

    db = Database(database_url, pool_size=1)
    try:
        async with db.unit_of_work() as session:
            count = await session.scalar(select(func.count()).select_from(Ticket).where(Ticket.subject.like(f"mbox {tag} %")))
    finally:
        await db.dispose()
    assert count == 3

    missing = await asyncio.to_thread(run_cli, "import-mbox", str(tmp_path / "nope.mbox"), database_url=database_url, cwd=tmp_path)
    assert missing.returncode != 0
    assert missing.stderr.strip().startswith("helpdesk: no such mbox file")
    assert "Traceback" not in missing.stderr


async def test_import_maildir_keeps_dates_and_tells_no_one(database_url: str, tmp_path: Path) -> None:
    from core.db import Database
    from core.events import OutboxEvent, parse_event
    from core.tickets.models import TicketComment
    from outbound.recipients import recipients_for

    tag = uuid.uuid4().hex[:8]
    box = mailbox.Maildir(tmp_path / "old", create=True)
    first = EmailMessage()
    first["From"], first["To"], first["Subject"] = f"Old Customer <old-{tag}@customer.test>", SUPPORT, f"maildir {tag}"
    first["Message-ID"], first["Date"] = f"<{tag}.1@customer.test>", "Tue, 05 Mar 2019 10:00:00 +0000"
    first.set_content("my old problem")
    reply = EmailMessage()
    reply["From"], reply["To"], reply["Subject"] = f"old-{tag}@customer.test", SUPPORT, f"Re: maildir {tag}"
    reply["Message-ID"], reply["Date"] = f"<{tag}.2@customer.test>", "Wed, 06 Mar 2019 09:30:00 +0100"
    reply["In-Reply-To"] = reply["References"] = f"<{tag}.1@customer.test>"
    reply.set_content("still broken")
    box.add(first.as_bytes())
    box.add(reply.as_bytes())

    result = await asyncio.to_thread(run_cli, "import-maildir", str(tmp_path / "old"), database_url=database_url, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "2 messages: 1 ticket, 1 comment, 0 duplicates, 0 quarantined; no mail was sent" in result.stdout

    db = Database(database_url, pool_size=1)
    try:
        async with db.unit_of_work() as session:
            ticket = await session.scalar(select(Ticket).where(Ticket.subject == f"maildir {tag}"))
            assert ticket is not None and ticket.created_at.isoformat().startswith("2019-03-05T10:00")
            comments = list(await session.scalars(
                select(TicketComment).where(TicketComment.ticket_id == ticket.id).order_by(TicketComment.created_at)
            ))
            assert [c.created_at.isoformat()[:16] for c in comments] == ["2019-03-05T10:00", "2019-03-06T08:30"]
            events = list(await session.scalars(select(OutboxEvent).where(OutboxEvent.key == str(ticket.id))))
            assert events and [await recipients_for(session, parse_event(e.payload)) for e in events] == [[]] * len(events)
    finally:
        await db.dispose()

    for bad, expected in ((tmp_path / "old" / "cur", "is not a maildir"), (tmp_path / "nowhere", "no such maildir")):
        failed = await asyncio.to_thread(run_cli, "import-maildir", str(bad), database_url=database_url, cwd=tmp_path)
        assert failed.returncode != 0 and expected in failed.stderr and "Traceback" not in failed.stderr
    (tmp_path / "notes.txt").write_text("shopping list\n")
    not_mbox = await asyncio.to_thread(run_cli, "import-mbox", str(tmp_path / "notes.txt"), database_url=database_url, cwd=tmp_path)
    assert not_mbox.returncode != 0 and "is not an mbox file" in not_mbox.stderr and "0 messages" not in not_mbox.stdout
