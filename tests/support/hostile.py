"""Pathological messages: each one drives the stdlib parser to minutes or gigabytes unbounded."""

from __future__ import annotations

import uuid


def _head(extra: bytes = b"", ctype: bytes = b"text/plain", sender: bytes = b"hostile@mail.test") -> bytes:
    return (
        b"From: " + sender + b"\r\nTo: support@example.com\r\n"
        + (b"" if extra.startswith(b"Subject:") else b"Subject: hostile\r\n")
        + b"Message-ID: <" + uuid.uuid4().hex.encode() + b"@mail.test>\r\n" + extra
        + b"MIME-Version: 1.0\r\nContent-Type: " + ctype + b"\r\n\r\n"
    )


def encoded_word_header(size: int = 400_000) -> bytes:
    """One header of ~400 KB of encoded words, folded (SMTP lines stay short)."""
    words = b"\r\n ".join([b"=?utf-8?q?=C3=A9t=C3=A9?="] * (size // 27))
    return _head(b"Subject: " + words + b"\r\n") + b"body\r\n"


def many_encoded_words(count: int = 5000) -> bytes:
    """Encoded words under the header size bound, but thousands of them."""
    words = b"\r\n ".join([b"=?utf-8?b?w6k=?="] * count)
    return _head(b"Subject: " + words + b"\r\n") + b"body\r\n"


def deep_mime(depth: int = 3000) -> bytes:
    body = b"".join(b'--b%d\r\nContent-Type: multipart/mixed; boundary="b%d"\r\n\r\n' % (i, i + 1) for i in range(depth))
    return _head(ctype=b'multipart/mixed; boundary="b0"') + body + b"--b%d\r\nContent-Type: text/plain\r\n\r\nhi\r\n" % depth


def deep_messages(depth: int = 3000) -> bytes:
    """message/rfc822 inside message/rfc822, 3,000 times."""
    return _head(ctype=b"message/rfc822") + b"Content-Type: message/rfc822\r\n\r\n" * depth + b"Subject: in\r\n\r\nhi\r\n"


def many_parts(count: int = 100_000) -> bytes:
    parts = b"--P\r\nContent-Type: text/plain\r\n\r\nx\r\n" * count
    return _head(ctype=b'multipart/mixed; boundary="P"') + parts + b"--P--\r\n"


def many_attachments(count: int = 150) -> bytes:
    part = b'--P\r\nContent-Type: application/octet-stream\r\nContent-Disposition: attachment; filename="a.bin"\r\n\r\nx\r\n'
    return _head(ctype=b'multipart/mixed; boundary="P"') + b"--P\r\nContent-Type: text/plain\r\n\r\nsee\r\n" + part * count + b"--P--\r\n"


def many_references(count: int = 50_000, *, folded: bool = True) -> bytes:
    sep = b"\r\n " if folded else b" "
    return _head(b"References: " + sep.join(b"<%d@x.test>" % i for i in range(count)) + b"\r\n") + b"hi\r\n"


def nul_everywhere() -> bytes:
    return (
        b"From: nul@mail.test\r\nTo: support@example.com\r\nSubject: n\x00ul\r\nMessage-ID: <n\x00"
        + uuid.uuid4().hex.encode() + b"@mail.test>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="B"\r\n\r\n'
        b'--B\r\nContent-Type: text/plain; charset="utf\x00-8"\r\n\r\nhello\r\n'
        b'--B\r\nContent-Type: image/p\x00ng; name="a\x00.png"\r\nContent-Disposition: attachment; filename="f\x00.png"\r\n'
        b"Content-ID: <c\x00id@m>\r\n\r\nxx\r\n--B--\r\n"
    )
