"""SMTP in one gateway, ingest in another: the intake's commit wakes the other process's runner."""

from __future__ import annotations

import asyncio
import smtplib
from email.message import EmailMessage

from core.db import Database
from core.enums import InboundStatus
from gateway.roles import Gateway
from tests.support.gateway import SUPPORT, make_settings, queued_id, wait_settled


async def test_worker_elsewhere_is_woken_by_notify_not_by_polling(database_url: str, tmp_path) -> None:
    # a poll interval far beyond the wait below: only the notification can be in time
    front = Gateway(settings=make_settings(database_url, tmp_path, roles="smtp,api"), db=Database(database_url))
    back = Gateway(
        settings=make_settings(database_url, tmp_path, roles="worker", ingest_poll_seconds=600),
        db=Database(database_url),
    )
    await back.start()
    await front.start()
    probe = Database(database_url, pool_size=1)
    try:
        m = EmailMessage()
        m["From"], m["To"], m["Subject"] = "split@customer.test", SUPPORT, "split roles"
        m.set_content("hello")
        assert front.smtp_port is not None

        def send() -> bytes:
            with smtplib.SMTP("127.0.0.1", front.smtp_port) as client:
                client.ehlo("t")
                client.mail("split@customer.test")
                client.rcpt(SUPPORT)
                return client.data(m.as_bytes().replace(b"\n", b"\r\n"))[1]

        inbound = await wait_settled(probe, queued_id(await asyncio.to_thread(send)), timeout=20)
        assert inbound.status is InboundStatus.processed
    finally:
        await probe.dispose()
        await front.stop()
        await back.stop()
