from __future__ import annotations

from pathlib import Path

import pytest

import core.mail.parse as parse_module

from core.mail.addresses import support_mailbox
from core.mail.html import html_to_text, sanitize_html
from core.mail.names import MAX_FILENAME, sanitize_filename
from core.mail.parse import Unprocessable, parse

MAILBOXES = {"support@example.com": "Support"}


def test_plain_message_fields() -> None:
    mail = parse(
        b"From: =?utf-8?q?Zo=C3=AB?= <Zoe@Example.COM>\r\nTo: support@example.com\r\n"
        b"Cc: a@x.test, b@y.test\r\nSubject: =?utf-8?b?w4lsw6hu?= \r\n\tfolded\r\n"
        b"Message-ID: <abc@x.test>\r\nIn-Reply-To: <one@x.test>\r\n"
        b"References: <zero@x.test> <one@x.test>\r\n\r\nHi there\r\n"
    )
    assert (mail.from_name, mail.from_address) == ("Zoë", "zoe@example.com")
    assert mail.subject == "Élèn folded"
    assert mail.message_id == "abc@x.test"
    assert mail.in_reply_to == ["one@x.test"]
    assert mail.references == ["zero@x.test", "one@x.test"]
    assert mail.cc == ["a@x.test", "b@y.test"]
    assert mail.text == "Hi there"


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b"Subject: x\r\n\r\nbody", "no From header"),
        (b"From: a@x.test\r\nFrom: b@x.test\r\n\r\nbody", "more than one From header"),
        (b"From: a@x.test, b@x.test\r\n\r\nbody", "From must name exactly one mailbox"),
        (b"From: just words\r\n\r\nbody", "From address is not valid: '\"just words\"'"),
        (b"From: <>\r\n\r\nbody", "From address is not valid: '<>'"),
    ],
)
def test_senders_we_cannot_trust_are_unprocessable(raw: bytes, reason: str) -> None:
    with pytest.raises(Unprocessable) as excinfo:
        parse(raw)
    assert excinfo.value.reason == reason


def test_unknown_charset_and_bad_bytes_never_crash() -> None:
    mail = parse(
        b"From: a@x.test\r\nContent-Type: text/plain; charset=x-unknown-charset\r\n\r\ncaf\xe9 \xff\r\n"
    )
    assert mail.text.startswith("caf")
    mail = parse(b"From: a@x.test\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n\xff\xfe ok\r\n")
    assert "ok" in mail.text


def test_html_only_mail_is_sanitized_and_rendered_to_text() -> None:
    mail = parse(
        b"From: a@x.test\r\nContent-Type: text/html; charset=utf-8\r\n\r\n"
        b"<p onclick='steal()'>Hello <b>world</b></p><script>alert(1)</script>"
        b"<a href='javascript:alert(1)'>x</a><img src='cid:logo'>"
    )
    assert "script" not in mail.html and "onclick" not in mail.html and "javascript:" not in mail.html
    assert 'src="cid:logo"' in mail.html
    assert mail.text.startswith("Hello world")


def test_attachments_and_inline_images() -> None:
    raw = (
        b"From: a@x.test\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n'
        b"--B\r\nContent-Type: text/plain\r\n\r\nsee files\r\n"
        b"--B\r\nContent-Type: image/png\r\nContent-ID: <img1@x>\r\nContent-Disposition: inline\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\niVBORw0KGgo=\r\n"
        b"--B\r\nContent-Type: application/pdf; name=\"..\\\\..\\\\evil.pdf\"\r\n"
        b"Content-Disposition: attachment; filename=\"..\\\\..\\\\evil.pdf\"\r\n\r\n%PDF\r\n"
        b"--B--\r\n"
    )
    mail = parse(raw)
    assert mail.text == "see files"
    inline, pdf = mail.attachments
    assert (inline.content_id, inline.inline, inline.data) == ("img1@x", True, b"\x89PNG\r\n\x1a\n")
    assert inline.filename == "attachment.png"
    assert pdf.filename == "evil.pdf" and pdf.data.startswith(b"%PDF")


def test_filenames_lose_paths_controls_and_length() -> None:
    assert sanitize_filename("../../etc/passwd") == "passwd"
    assert sanitize_filename("a\u202egnp.exe") == "agnp.exe"
    assert sanitize_filename("bell\x07.txt") == "bell.txt"
    assert sanitize_filename("", "application/pdf") == "attachment.pdf"
    long = sanitize_filename("x" * 500 + ".docx")
    assert len(long) == MAX_FILENAME and long.endswith(".docx")


def test_support_mailbox_accepts_plus_tags_and_case() -> None:
    assert support_mailbox("Support+token123@Example.com", MAILBOXES) == "support@example.com"
    assert support_mailbox("<support@example.com>", MAILBOXES) == "support@example.com"
    assert support_mailbox("sales@example.com", MAILBOXES) is None
    assert support_mailbox("support@evil.test", MAILBOXES) is None
    assert support_mailbox("", MAILBOXES) is None


def test_html_helpers() -> None:
    assert sanitize_html('<form action="x"><input></form><base href="http://e">ok') == "ok"
    assert html_to_text("<div>a</div><div>b &amp; c</div><style>p{}</style>") == "a\n\nb & c"


def test_hostile_headers_found_by_fuzzing() -> None:
    # the stdlib's address parser raises IndexError on this one
    with pytest.raises(Unprocessable):
        parse(b"From: 0@\r\nTo: support@example.com\r\n\r\n")
    # raw 8-bit bytes in headers become U+FFFD, never surrogates that PostgreSQL refuses
    mail = parse(b"From: a@x.test\r\nCc: 0@\xc2\x80, ok@y.test\r\nSubject: caf\xe9\r\nMessage-ID: <\xff\xfe@x>\r\n\r\nbody\x00end\r\n")
    for value in (mail.subject, mail.message_id or "", mail.text, *mail.cc):
        value.encode("utf-8")  # would raise on a lone surrogate
        assert "\x00" not in value
    assert "ok@y.test" in mail.cc


def _parse_each(raws: list[bytes]) -> list[object]:
    found: list[object] = []
    for raw in raws:
        try:
            found.append(parse(raw))
        except Unprocessable as exc:
            found.append(exc.reason)
    return found


def test_headers_shared_between_messages_parse_as_each_message_alone(
    cpython_email_data: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Parsed headers are shared from message to message (core.mail.parse._shared_header):
    mail written by others parses to the same result as with nothing shared."""
    raws = [p.read_bytes() for p in sorted(cpython_email_data.glob("msg_*.txt"))]
    raws += [
        b"From: a@x.test\r\nTo: 1.0\r\nMIME-Version: 1.0\r\nSubject: 1.0\r\n\r\nbody\r\n",
        b"From: 1.0 <b@x.test>\r\nSubject: a@x.test\r\nCc: a@x.test\r\n\r\nbody\r\n",
    ]
    assert len(raws) >= 40
    shared = _parse_each(raws + raws)  # the second round finds every short header shared
    monkeypatch.setattr(parse_module, "SHARED_HEADER_CHARS", -1)
    alone = _parse_each(raws)
    assert shared[len(raws):] == alone
    assert shared[: len(raws)] == alone
