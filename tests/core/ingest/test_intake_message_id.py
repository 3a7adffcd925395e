"""The intake reads the Message-ID without the email parser when it can: same answer always."""

from __future__ import annotations

from pathlib import Path

import pytest

from core.ingest.intake import _parsed_message_id, header_message_id

CASES = {
    "plain": b"From: a@b.example\r\nMessage-ID: <x1@b.example>\r\n\r\nbody\r\n",
    "lower case name, LF": b"message-id:<x2@b.example>\nFrom: a@b.example\n\nbody\n",
    "folded": b"Message-ID:\r\n <x3@b.example>\r\nSubject: s\r\n\r\nbody\r\n",
    "folded after the value": b"Message-ID: <x4@b\r\n .example>\r\n\r\nbody\r\n",
    "two of them": b"Message-ID: <first@b>\r\nMessage-ID: <second@b>\r\n\r\n",
    "none": b"From: a@b.example\r\nSubject: no id\r\n\r\nbody\r\n",
    "space before colon": b"Subject: s\r\nMessage-ID : <x5@b>\r\n\r\nbody\r\n",
    "8-bit": "Message-ID: <jörg@b.example>\r\n\r\nbody\r\n".encode(),
    "mbox From line": b"From a@b Mon Jan  1 00:00:00 2024\nMessage-ID: <x6@b>\n\nbody\n",
    "no body": b"Message-ID: <x7@b>\r\nSubject: s\r\n",
    "id only in the body": b"Subject: s\r\n\r\nMessage-ID: <x8@b>\r\n",
    "not a header first": b"hello there\r\nMessage-ID: <x9@b>\r\n\r\n",
    "bare words": b"Message-ID: not-bracketed-at-all  \r\n\r\n",
    "empty": b"",
}


@pytest.mark.parametrize("raw", CASES.values(), ids=CASES.keys())
def test_the_quick_reading_agrees_with_the_parser(raw: bytes) -> None:
    assert header_message_id(raw) == _parsed_message_id(raw)


def test_the_usual_case_is_read() -> None:
    assert header_message_id(CASES["plain"]) == "x1@b.example"
    assert header_message_id(CASES["folded"]) == "x3@b.example"


def test_other_peoples_mail_agrees(cpython_email_data: Path) -> None:
    fixtures = Path(__file__).parents[2] / "fixtures"
    files = sorted(cpython_email_data.glob("msg_*.txt")) + sorted(fixtures.rglob("*.eml")) + sorted(fixtures.rglob("*.txt"))
    assert len(files) > 100
    for path in files:
        raw = path.read_bytes()
        for variant in (raw, raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")):
            assert header_message_id(variant) == _parsed_message_id(variant), path.name
