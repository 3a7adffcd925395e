"""Where outgoing mail goes: an SMTP relay (aiosmtplib), or by default a Maildir on disk.

Both take the message as bytes with an explicit envelope: the sender is the bounce address,
the recipient the one address of this delivery (never the headers' To).
"""

from __future__ import annotations

import asyncio
import mailbox
import random
import sys
import threading
from email import policy
from email.generator import NLCRE
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.mime.text import MIMEText
from email.policy import Compat32
from email.message import EmailMessage, Message
from pathlib import Path
from typing import Any, Protocol

import aiosmtplib

from core.config import Settings



class _QuickCompat32(Compat32):
    """compat32 whose folding skips `email.header.Header` for a header that needs none: a short
    line of printable ASCII with single spaces comes out as `Name: value` (the same bytes as
    compat32's; its Header round trip was over half of flattening a notification)."""

    def fold_binary(self, name: str, value: Any) -> bytes:
        if (isinstance(value, str) and len(name) + len(value) + 2 <= 78 and value.isascii()
                and value.isprintable() and value == " ".join(value.split())):
            return f"{name}: {value}{self.linesep}".encode("ascii")
        return super().fold_binary(name, value)


_COMPAT_SMTP = _QuickCompat32(linesep="\r\n")


def _flatten_alternative(message: Message) -> bytes | None:
    """What `message.as_bytes(policy=_COMPAT_SMTP)` makes of a notification (`build_message`'s
    multipart/alternative of ASCII text parts: quoted-printable), without the generator: the same
    headers folded by the same policy, the same line ends, the same kind of random boundary —
    though checked by a substring search, where the generator compiled a regular expression
    for every new boundary (a third of flattening). None for any other shape of message."""
    parts = message.get_payload()
    if (type(message) is not MIMEMultipart or message.preamble is not None or message.epilogue is not None
            or not isinstance(parts, list)):
        return None
    texts = []
    for part in parts:
        payload = part.get_payload()
        if (type(part) not in (MIMENonMultipart, MIMEText) or not isinstance(payload, str) or not payload.isascii()
                or part.get_content_maintype() != "text"):
            return None
        head = b"".join(_COMPAT_SMTP.fold_binary(name, value) for name, value in part.raw_items())
        texts.append(head + b"\r\n" + NLCRE.sub("\r\n", payload).encode("ascii"))
    boundary = message.get_boundary()
    if not boundary:
        boundary = _boundary(b"\r\n".join(texts))
        message.set_boundary(boundary)
    head = b"".join(_COMPAT_SMTP.fold_binary(name, value) for name, value in message.raw_items())
    dash = b"--" + boundary.encode("ascii")
    return b"".join([head, b"\r\n", dash, b"\r\n", (b"\r\n" + dash + b"\r\n").join(texts), b"\r\n", dash, b"--\r\n"])


def _boundary(text: bytes) -> str:
    """`Generator._make_boundary`'s boundary, not found anywhere in `text` (the generator
    looked only for whole lines: this may pick another more often, never a worse one)."""
    boundary = "=" * 15 + _BOUNDARY_DIGITS % random.randrange(sys.maxsize) + "=="
    chosen, counter = boundary, 0
    while b"--" + chosen.encode("ascii") in text:
        chosen = f"{boundary}.{counter}"
        counter += 1
    return chosen


_BOUNDARY_DIGITS = f"%0{len(repr(sys.maxsize - 1))}d"


class TemporaryFailure(Exception):
    """Try again later (4xx, connection trouble)."""


class PermanentFailure(Exception):
    """The relay refused this message for good (5xx): mark the delivery failed."""


def _needs_utf8(*addresses: str) -> bool:
    return not all(a.isascii() for a in addresses)


def flatten(message: Message, *addresses: str) -> bytes:
    """Wire bytes, CRLF line ends: quick compat32 messages as they are, `EmailMessage`s by policy."""
    if not isinstance(message, EmailMessage):
        quick = _flatten_alternative(message)
        return quick if quick is not None else message.as_bytes(policy=_COMPAT_SMTP)
    utf8 = _needs_utf8(*addresses, str(message["To"] or ""), str(message["From"] or ""))
    return message.as_bytes(policy=policy.SMTPUTF8 if utf8 else policy.SMTP)


class Transport(Protocol):
    async def send(self, message: Message, *, sender: str, recipient: str) -> None: ...

    async def close(self) -> None: ...


class SmtpTransport:
    """aiosmtplib over a few kept-open connections (one per concurrent send, up to `max_idle`)."""

    def __init__(
        self, host: str, port: int, *, starttls: bool = False, username: str | None = None,
        password: str | None = None, timeout: float = 30.0, local_hostname: str | None = None,
        max_idle: int = 8,
    ) -> None:
        self.host, self.port = host, port
        self.starttls = starttls
        self.username, self.password = username, password
        self.timeout = timeout
        self.local_hostname = local_hostname
        self.max_idle = max_idle
        self._idle: list[aiosmtplib.SMTP] = []

    async def _connect(self) -> aiosmtplib.SMTP:
        client = aiosmtplib.SMTP(
            hostname=self.host, port=self.port, start_tls=self.starttls, username=self.username,
            password=self.password, timeout=self.timeout, local_hostname=self.local_hostname,
        )
        await client.connect()  # EHLO, STARTTLS and AUTH as configured
        return client

    async def send(self, message: Message, *, sender: str, recipient: str) -> None:
        data = flatten(message, sender, recipient)
        options = ["SMTPUTF8"] if _needs_utf8(sender, recipient) else []
        try:
            reused = bool(self._idle)
            client = self._idle.pop() if reused else await self._connect()
            try:
                await client.sendmail(sender, [recipient], data, mail_options=options)
            except (aiosmtplib.SMTPServerDisconnected, ConnectionError):
                client.close()
                if not reused:
                    raise
                client = await self._connect()  # the kept connection had gone stale
                await client.sendmail(sender, [recipient], data, mail_options=options)
            except BaseException:
                client.close()
                raise
        except aiosmtplib.SMTPRecipientsRefused as exc:
            first = exc.recipients[0]
            raise _classify(first.code, first.message) from exc
        except (aiosmtplib.SMTPAuthenticationError, aiosmtplib.SMTPNotSupported) as exc:
            raise TemporaryFailure(f"relay set-up: {exc}") from exc  # ours to fix, not the recipient's
        except aiosmtplib.SMTPResponseException as exc:
            raise _classify(exc.code, exc.message) from exc
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise TemporaryFailure(f"{type(exc).__name__}: {exc}") from exc
        if len(self._idle) < self.max_idle:
            self._idle.append(client)
        else:
            client.close()

    async def close(self) -> None:
        idle, self._idle = self._idle, []
        for client in idle:
            try:
                await asyncio.wait_for(client.quit(), 5)
            except Exception:
                client.close()


def _classify(code: int, message: str) -> Exception:
    text = f"{code} {message}".strip()
    return PermanentFailure(text) if 500 <= code < 600 else TemporaryFailure(text)


class MaildirTransport:
    """Each message a file in `path/new`, with the envelope sender as Return-Path."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # Maildir(create=True) makes the folder, then tmp/ new/ cur/: two threads creating it at
        # once can see the folder before its tmp/ exists. Create it once, under a lock.
        self._ready = threading.Lock()
        self._box: mailbox.Maildir | None = None

    async def send(self, message: Message, *, sender: str, recipient: str) -> None:
        data = b"Return-Path: <" + sender.encode() + b">\r\nDelivered-To: " + recipient.encode() + b"\r\n"
        data += flatten(message, sender, recipient)
        try:
            await asyncio.to_thread(self._add, data)
        except OSError as exc:
            raise TemporaryFailure(f"maildir {self.path}: {exc}") from exc

    async def close(self) -> None:
        return None

    def _add(self, data: bytes) -> None:
        with self._ready:
            if self._box is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._box = mailbox.Maildir(self.path, create=True)
        self._box.add(data)


def transport_from_settings(settings: Settings) -> Transport:
    if settings.smtp_relay:
        host, _, port = settings.smtp_relay.strip().rpartition(":")  # validated by Settings
        return SmtpTransport(
            host.strip("[]"), int(port), starttls=settings.smtp_relay_starttls,
            username=settings.smtp_relay_username, password=settings.smtp_relay_password,
            timeout=settings.smtp_relay_timeout, local_hostname=settings.smtp_hostname,
            max_idle=settings.mail_concurrency,
        )
    return MaildirTransport(settings.data_dir / "mail" / "outbox")
