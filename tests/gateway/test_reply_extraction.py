"""Reply extraction end to end: a reply sent over SMTP to an open ticket, its comment read over
the HTTP API, equal to the expected new text (the fixtures of tests/fixtures/replies, one
per category, plain text and HTML-only)."""

from __future__ import annotations

import asyncio
import json
import smtplib
import uuid
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

import pytest

from core.enums import InboundStatus
from core.mail.html import html_to_text
from tests.support.gateway import SUPPORT, Running, crlf, queued_id

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "replies"
CASES = {c["id"]: c for c in json.loads((FIXTURES / "cases.json").read_text(encoding="utf-8"))["cases"]}
SAMPLE = [
    "ours/outlook_header/de",
    "ours/original_message/ru",
    "ours/attribution_multiline/fr_two_lines",
    "ours/attribution/zh",
    "ours/device/ja",
    "ours/signature/en_dash_dash_sig",
    "ours/not_a_delimiter/dashes",
    "ours/inline/answers_between",
    "ours/forward/gmail",
    "ours/html/gmail_en",
    "ours/html/outlook_desktop_es",
    "ours/html/apple_fr",
    "talon/standard_replies/gmail",
]


def _send(port: int, raw: bytes) -> bytes:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo("mail.test")
        client.mail("customer@mail.test")
        client.rcpt(SUPPORT)
        return client.data(crlf(raw))[1]


async def _deliver(gw: Running, message: EmailMessage):
    reply = await asyncio.to_thread(_send, gw.smtp_port, message.as_bytes())
    inbound = await gw.settled(queued_id(reply))
    assert inbound.status is InboundStatus.processed, inbound.reason
    return inbound


def _message(subject: str, message_id: str, in_reply_to: str | None = None) -> EmailMessage:
    m = EmailMessage()
    m["From"] = "Customer <customer@mail.test>"
    m["To"] = SUPPORT
    m["Subject"] = subject
    m["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        m["In-Reply-To"] = m["References"] = f"<{in_reply_to}>"
    return m


def _reply(case: dict, subject: str, in_reply_to: str) -> EmailMessage:
    m = _message(f"Re: {subject}", f"{uuid.uuid4().hex}@mail.test", in_reply_to)
    path = FIXTURES / case["input"]
    if case["format"] == "eml":  # its text part, as the client sent it
        original = message_from_bytes(path.read_bytes(), policy=policy.default)
        m.set_content(original.get_body(preferencelist=("plain",)).get_content())
        return m
    content = path.read_text(encoding="utf-8")
    m.set_content(content, subtype="html" if case["format"] == "html" else "plain")
    return m


@pytest.mark.parametrize("case_id", SAMPLE)
async def test_reply_over_smtp_becomes_only_its_new_text(gateway: Running, case_id: str) -> None:
    case = CASES[case_id]
    subject, first_id = f"Printer {uuid.uuid4().hex[:6]}", f"{uuid.uuid4().hex}@mail.test"
    first = _message(subject, first_id)
    first.set_content("My printer shows error 42.")
    ticket_id = (await _deliver(gateway, first)).ticket_id

    inbound = await _deliver(gateway, _reply(case, subject, first_id))
    assert inbound.ticket_id == ticket_id and inbound.matched_rule != "new_ticket"

    async with gateway.http() as client:
        response = await client.get(f"/api/v1/tickets/{ticket_id}/comments")
        assert response.status == 200
        comments = (await response.json())["comments"]
    comment = next(c for c in comments if c["id"] == str(inbound.comment_id))
    assert " ".join(comment["body"].split()) == " ".join(case["expected"].split())
    if case["format"] == "html":  # the HTML shown agrees with the text
        assert " ".join(html_to_text(comment["html_body"]).split()) == " ".join(case["expected"].split())
