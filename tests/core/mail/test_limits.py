"""Threat: one message drives the parser to minutes and gigabytes. Bounds checked on raw bytes."""

from __future__ import annotations

import pytest

from core.mail.limits import ParseLimits, bounded_parse
from core.mail.parse import Unprocessable
from tests.support import hostile

LIMITS = ParseLimits()


@pytest.mark.parametrize(("raw", "limit"), [
    (hostile.encoded_word_header(), "header_bytes"),
    (hostile.many_encoded_words(), "encoded_words"),
    (hostile.deep_mime(), "mime_depth"),
    (hostile.deep_messages(), "mime_depth"),
    (hostile.many_parts(), "mime_parts"),
    (hostile.many_attachments(), "attachments"),
    (hostile.many_references(50_000), "header_bytes"),
    (hostile.many_references(500, folded=False), "references"),
], ids=["encoded-word-header", "encoded-words", "deep-mime", "deep-rfc822", "100k-parts", "attachments",
        "50k-references", "references"])
def test_pathological_message_is_the_senders_fault_naming_the_limit(raw: bytes, limit: str) -> None:
    with pytest.raises(Unprocessable) as caught:
        bounded_parse(raw, LIMITS)
    assert caught.value.reason.startswith(f"limit {limit}:")


def test_limits_leave_ordinary_nesting_alone() -> None:
    raw = (
        b'From: a@b.test\r\nTo: support@example.com\r\nSubject: =?utf-8?q?caf=C3=A9?=\r\nMIME-Version: 1.0\r\n'
        b'Content-Type: multipart/mixed; boundary="A"\r\n\r\n'
        b'--A\r\nContent-Type: multipart/alternative; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain\r\n\r\nhello\r\n--B\r\nContent-Type: text/html\r\n\r\n<p>hello</p>\r\n--B--\r\n"
        b'--A\r\nContent-Type: message/rfc822\r\n\r\nFrom: x@y.test\r\nContent-Type: multipart/mixed; boundary="C"\r\n\r\n'
        b"--C\r\nContent-Type: text/plain\r\n\r\ninner\r\n--C--\r\n--A--\r\n"
    )
    mail = bounded_parse(raw, ParseLimits(mime_depth=3, mime_parts=5))
    assert mail.subject == "café" and mail.text == "hello"
    with pytest.raises(Unprocessable, match="limit mime_depth"):
        bounded_parse(raw, ParseLimits(mime_depth=2))


def test_nul_bytes_in_charset_type_and_filename_are_cleaned_not_raised() -> None:
    mail = bounded_parse(hostile.nul_everywhere(), LIMITS)
    assert mail.text == "hello" and "\x00" not in mail.subject
    [attachment] = mail.attachments
    assert "\x00" not in attachment.content_type + attachment.filename
