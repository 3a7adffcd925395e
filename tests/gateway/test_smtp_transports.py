"""STARTTLS when a certificate is configured, and LMTP on request."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
import subprocess
import uuid
from pathlib import Path

from core.enums import InboundStatus
from tests.support.gateway import SUPPORT, crlf, make_settings, queued_id, running_gateway

def message(subject: str) -> bytes:
    return f"From: tls@customer.test\r\nTo: support@example.com\r\nSubject: {subject} {uuid.uuid4()}\r\n\r\nhi\r\n".encode()


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True,
    )
    return cert, key


async def test_starttls_is_offered_and_works_when_a_certificate_is_configured(database_url: str, tmp_path) -> None:
    cert, key = self_signed(tmp_path)
    settings = make_settings(database_url, tmp_path / "data", smtp_tls_cert=cert, smtp_tls_key=key)
    async with running_gateway(settings) as gw:
        def send() -> tuple[bool, bytes]:
            context = ssl.create_default_context(cafile=str(cert))
            context.check_hostname = False
            with smtplib.SMTP("127.0.0.1", gw.smtp_port) as client:
                client.ehlo("t")
                offered = client.has_extn("starttls")
                client.starttls(context=context)
                client.ehlo("t")
                client.mail("tls@customer.test")
                client.rcpt(SUPPORT)
                return offered, client.data(crlf(message('secret')))[1]

        offered, reply = await asyncio.to_thread(send)
        assert offered
        assert (await gw.settled(queued_id(reply))).status is InboundStatus.processed


async def test_without_a_certificate_no_starttls(gateway) -> None:
    def features() -> bool:
        with smtplib.SMTP("127.0.0.1", gateway.smtp_port) as client:
            client.ehlo("t")
            return client.has_extn("starttls")

    assert not await asyncio.to_thread(features)


async def test_lmtp_answers_once_per_recipient(database_url: str, tmp_path) -> None:
    async with running_gateway(make_settings(database_url, tmp_path / "data", lmtp=True)) as gw:
        def send() -> list[tuple[int, bytes]]:
            with smtplib.LMTP("127.0.0.1", gw.smtp_port) as client:
                assert client.docmd("EHLO", "t")[0] == 500  # LMTP speaks LHLO only
                assert client.ehlo("t")[0] == 250  # smtplib.LMTP sends LHLO here
                client.mail("lmtp@customer.test")
                client.rcpt(SUPPORT)
                client.rcpt("billing@example.com")
                assert client.docmd("DATA")[0] == 354
                client.send(crlf(message('lmtp')) + b".\r\n")
                # RFC 2033: one reply per accepted recipient (smtplib's sendmail reads only one)
                return [client.getreply() for _ in range(2)]

        replies = await asyncio.to_thread(send)
        assert [code for code, _ in replies] == [250, 250]
        assert (await gw.settled(queued_id(replies[0][1]))).status is InboundStatus.processed
