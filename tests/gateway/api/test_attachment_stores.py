"""Downloads through each store: streamed exact bytes; a blob that cannot be read is a 404 or a
503 with a reason, never a 500; `helpdesk attachments migrate` copies, resumably."""

from __future__ import annotations

import asyncio
import os
import shutil
import smtplib
import uuid
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from sqlalchemy import delete, select

from core.attachments.fs import FileStore
from core.attachments.models import AttachmentBlob
from core.attachments.postgres import PostgresStore
from core.tickets.models import TicketAttachment
from gateway.cli import main
from tests.support.gateway import SUPPORT, Running, crlf, make_settings, running_gateway


S3_URL = os.environ.get("HELPDESK_TEST_S3_URL")  # http://KEY:SECRET@host:port/bucket


def mail_with(payload: bytes, filename: str) -> bytes:
    message = EmailMessage()
    message["From"], message["To"] = "files@customer.test", SUPPORT
    message["Subject"], message["Message-ID"] = "Files", f"<{uuid.uuid4().hex}@customer.test>"
    message.set_content("See attached.")
    message.add_attachment(payload, maintype="application", subtype="octet-stream", filename=filename)
    return message.as_bytes()


async def attachment_of(gw: Running, payload: bytes, filename: str = "report.bin") -> TicketAttachment:
    def send() -> str:
        with smtplib.SMTP("127.0.0.1", gw.smtp_port, timeout=30) as client:
            client.ehlo()
            client.mail("files@customer.test")
            client.rcpt(SUPPORT)
            code, reply = client.data(crlf(mail_with(payload, filename)))
            assert code == 250
            return reply.decode().rsplit(" ", 1)[-1]
    inbound = await gw.settled(await asyncio.to_thread(send))
    async with gw.db.read_only() as session:
        attachment = await session.scalar(
            select(TicketAttachment).where(TicketAttachment.ticket_id == inbound.ticket_id))
    assert attachment is not None
    return attachment


def url_of(a: TicketAttachment) -> str:
    return f"/api/v1/tickets/{a.ticket_id}/attachments/{a.id}"


async def test_postgres_store_serves_a_large_attachment_streamed(database_url: str, tmp_path: Path) -> None:
    payload = os.urandom(3 * 1024 * 1024 + 7)
    settings = make_settings(database_url, tmp_path / "data", attachment_store="postgres")
    async with running_gateway(settings) as gw:
        attachment = await attachment_of(gw, payload)
        assert not (tmp_path / "data" / "attachments").exists()  # nothing on this host's disk
        async with gw.http() as client, client.get(url_of(attachment)) as response:
            assert response.status == 200
            assert response.headers["Content-Length"] == str(len(payload))
            assert await response.read() == payload

        async with gw.db.unit_of_work() as session:  # the content is lost (say, a bad restore)
            await session.execute(delete(AttachmentBlob).where(AttachmentBlob.sha256 == attachment.sha256))
        async with gw.http() as client, client.get(url_of(attachment)) as response:
            assert response.status == 404
            assert (await response.json())["error"]["code"] == "attachment_content_missing"


async def test_unreadable_file_is_a_503_with_a_reason(gateway: Running) -> None:
    attachment = await attachment_of(gateway, b"some bytes")
    path = FileStore(gateway.gateway.settings.attachments_dir).path_for(attachment.sha256)
    path.unlink()
    async with gateway.http() as client, client.get(url_of(attachment)) as response:
        assert response.status == 404
        assert (await response.json())["error"]["code"] == "attachment_content_missing"
    path.mkdir()  # something in the way the file cannot be read through: an I/O failure
    async with gateway.http() as client, client.get(url_of(attachment)) as response:
        assert response.status == 503
        body = await response.json()
        assert body["error"]["code"] == "attachment_store_unavailable"
        assert response.headers["Retry-After"]


async def test_migrate_copies_fs_content_into_postgres_resumably(
    gateway: Running, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    settings = gateway.gateway.settings
    first = await attachment_of(gateway, os.urandom(40_000), "one.bin")
    second = await attachment_of(gateway, os.urandom(2_500_000), "two.bin")
    lost = await attachment_of(gateway, b"about to vanish " + uuid.uuid4().bytes, "three.bin")
    FileStore(settings.attachments_dir).path_for(lost.sha256).unlink()
    monkeypatch.setenv("HELPDESK_DATABASE_URL", settings.database_url or "")
    argv = ["--data-dir", str(settings.data_dir), "attachments", "migrate", "--to", "postgres"]

    assert await asyncio.to_thread(main, argv) == 0
    out = capsys.readouterr().out
    assert "missing from fs" in out and f"not copied: {lost.sha256}" in out
    target = PostgresStore(gateway.db)
    for a in (first, second):
        assert await target.exists(a.sha256)
        blob = await target.open(a.sha256)
        assert blob.size == a.size

    shutil.rmtree(settings.attachments_dir / first.sha256[:2])  # a second run skips what is there
    assert await asyncio.to_thread(main, argv) == 0
    out = capsys.readouterr().out
    assert " 0 copied to postgres" in out

    # and the API of a gateway switched to postgres serves what was copied
    switched = make_settings(settings.database_url or "", settings.data_dir, attachment_store="postgres")
    async with running_gateway(switched) as gw:
        async with gw.http() as client, client.get(url_of(second)) as response:
            assert response.status == 200
            assert len(await response.read()) == second.size


@pytest.mark.skipif(S3_URL is None, reason="HELPDESK_TEST_S3_URL is not set: no S3-compatible server to test against")
async def test_migrate_to_s3_and_serve_from_it(
    gateway: Running, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:
    settings = gateway.gateway.settings
    attachment = await attachment_of(gateway, os.urandom(1_500_000), "big.bin")
    url = urlsplit(S3_URL or "")
    s3 = dict(
        s3_bucket=url.path.strip("/"), s3_prefix=f"test-{uuid.uuid4().hex[:8]}/",
        s3_endpoint_url=f"{url.scheme}://{url.hostname}:{url.port}",
        s3_access_key_id=url.username or "", s3_secret_access_key=url.password or "",
    )
    monkeypatch.setenv("HELPDESK_DATABASE_URL", settings.database_url or "")
    for name, value in s3.items():
        monkeypatch.setenv(f"HELPDESK_{name.upper()}", value)
    argv = ["--data-dir", str(settings.data_dir), "attachments", "migrate", "--to", "s3"]
    assert await asyncio.to_thread(main, argv) == 0
    assert "missing from fs" in capsys.readouterr().out

    switched = make_settings(settings.database_url or "", settings.data_dir, attachment_store="s3", **s3)
    async with running_gateway(switched) as gw:
        async with gw.http() as client, client.get(url_of(attachment)) as response:
            assert response.status == 200
            assert len(await response.read()) == attachment.size
