"""Templates: jinja2, sandboxed, HTML autoescaped; and the MIME message with threading headers.

Pure: no database. Everything a header holds passes `header_text` (no CR/LF, no control
characters), and addresses go through `email.headerregistry`, so a customer's name or subject
cannot add a header.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime
from email.charset import QP, Charset
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any

from jinja2 import FileSystemLoader, StrictUndefined, Template, select_autoescape
from jinja2.sandbox import SandboxedEnvironment

from core.triggers.templates import user_environment

TEMPLATES_DIR = Path(__file__).parent / "templates"
_CONTROL = re.compile(r"[\x00-\x1f\x7f\u2028\u2029]+")
_MSGID = re.compile(r"^[\x21-\x7e]+@[\x21-\x7e]+$")
_ADDR = re.compile(r"^[^\s<>()\[\]\\,;:\"@]+@[^\s<>()\[\]\\,;:\"@]+$")  # a plain mailbox
MAX_REFERENCES = 10
USER_TEMPLATES_KEPT = 256


class Renderer:
    def __init__(self, directory: Path = TEMPLATES_DIR) -> None:
        self.env = SandboxedEnvironment(
            loader=FileSystemLoader(str(directory)),
            autoescape=select_autoescape(enabled_extensions=("html.j2",), default_for_string=False),
            undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=True,
            # the templates ship with the code: not a stat of both files for every message
            auto_reload=False,
        )

        self.user_env = user_environment()  # admins' templates (trigger notifications)
        # an admin's subject or body, compiled once rather than for every recipient of every
        # event (compiling is most of rendering); a bounded number of them, most recent kept
        self._user_templates: dict[str, Template] = {}

    def render_string(self, source: str, context: dict[str, Any]) -> str:
        template = self._user_templates.pop(source, None)
        if template is None:
            template = self.user_env.from_string(source)
            if len(self._user_templates) >= USER_TEMPLATES_KEPT:
                del self._user_templates[next(iter(self._user_templates))]
        self._user_templates[source] = template
        return template.render(context)

    def render(self, template: str, context: dict[str, Any]) -> tuple[str, str]:
        text = self.env.get_template(f"{template}.txt.j2").render(context)
        html = self.env.get_template(f"{template}.html.j2").render(context)
        return text, html


def header_text(value: str, limit: int = 200) -> str:
    """One line of printable text: control characters and line breaks become single spaces."""
    return " ".join(_CONTROL.sub(" ", value or "").split())[:limit]


def subject_line(number: int, subject: str) -> str:
    tag = f"[#{number}]"
    subject = header_text(subject, 250) or "(no subject)"
    return subject if tag in subject else f"{tag} {subject}"


def thread_headers(thread: list[str]) -> tuple[str | None, str | None]:
    """(In-Reply-To, References) for a thread given oldest first: the root and the newest few."""
    ids = [i for i in dict.fromkeys(thread) if _MSGID.match(i) and "<" not in i and ">" not in i]
    if not ids:
        return None, None
    refs = ids if len(ids) <= MAX_REFERENCES else [ids[0], *ids[-(MAX_REFERENCES - 1):]]
    return f"<{ids[-1]}>", " ".join(f"<{i}>" for i in refs)


@dataclass(frozen=True)
class Envelope:
    message_id: str  # without angle brackets
    from_name: str
    from_address: str
    to_name: str
    to_address: str
    reply_to: str
    subject: str
    thread: list[str]
    # auto-generated | auto-replied; None for a person's words (an agent's public reply, RFC 3834 §5)
    auto_submitted: str | None
    ticket_number: int


def build_message(envelope: Envelope, text: str, html: str) -> Message:
    """The notification. ASCII addresses (nearly all) take the quick compat32 classes — the
    `email.headerregistry` path costs a millisecond a message; non-ASCII ones take that path."""
    addresses = (envelope.from_address, envelope.to_address, envelope.reply_to)
    if not all(a.isascii() and _ADDR.match(a) for a in addresses):
        return _build_unicode(envelope, text, html)
    msg = MIMEMultipart("alternative")
    for name, value in _headers(envelope):
        msg[name] = value
    msg.attach(_text_part(text, "plain"))
    msg.attach(_text_part(html, "html"))
    return msg


def _text_part(body: str, subtype: str) -> Message:
    """`MIMEText(body, subtype, _charset(body))`; for ASCII (nearly all) the same headers and
    payload made directly, without `set_charset`'s round trips through the parameter parser
    (two thirds of building a notification)."""
    if not body.isascii():
        return MIMEText(body, subtype, _charset(body))
    part = MIMENonMultipart("text", subtype, charset="us-ascii")
    part["Content-Transfer-Encoding"] = "quoted-printable"
    part.set_payload(_charset(body).body_encode(body))
    return part


def _charset(body: str) -> Charset:
    charset = Charset("us-ascii" if body.isascii() else "utf-8")
    charset.body_encoding = QP  # readable in any client, and friendlier to filters than base64
    return charset


def _address(name: str, address: str) -> str:
    return formataddr((header_text(name, 100), address), charset="utf-8")


def _headers(envelope: Envelope) -> list[tuple[str, Any]]:
    subject = subject_line(envelope.ticket_number, envelope.subject)
    headers: list[tuple[str, Any]] = [
        ("Message-ID", f"<{envelope.message_id}>"),
        ("Date", format_datetime(datetime.now(UTC))),
        ("From", _address(envelope.from_name, envelope.from_address)),
        ("To", _address(envelope.to_name, envelope.to_address)),
        ("Reply-To", _address(envelope.from_name, envelope.reply_to)),
        ("Subject", subject if subject.isascii() else Header(subject, "utf-8")),
    ]
    in_reply_to, references = thread_headers(envelope.thread)
    if in_reply_to and references:
        headers += [("In-Reply-To", in_reply_to), ("References", references)]
    if envelope.auto_submitted:
        headers.append(("Auto-Submitted", envelope.auto_submitted))
    return headers + [("X-Auto-Response-Suppress", "All"), ("X-Helpdesk-Ticket", str(envelope.ticket_number))]


def _unicode_address(name: str, address: str) -> Address:
    """An internationalised (SMTPUTF8) mailbox; refused if it could carry anything but itself."""
    local, _, domain = address.rpartition("@")
    if not local or not domain or _CONTROL.search(address) or any(c in address for c in ' <>,;:"\\'):
        raise ValueError(f"not a mailbox address: {address!r}")
    return Address(display_name=header_text(name, 100), username=local, domain=domain)


def _build_unicode(envelope: Envelope, text: str, html: str) -> EmailMessage:
    msg = EmailMessage()
    msg["Message-ID"] = f"<{envelope.message_id}>"
    msg["Date"] = format_datetime(datetime.now(UTC))
    msg["From"] = _unicode_address(envelope.from_name, envelope.from_address)
    msg["To"] = _unicode_address(envelope.to_name, envelope.to_address)
    msg["Reply-To"] = _unicode_address(envelope.from_name, envelope.reply_to)
    msg["Subject"] = subject_line(envelope.ticket_number, envelope.subject)
    in_reply_to, references = thread_headers(envelope.thread)
    if in_reply_to and references:
        msg["In-Reply-To"] = in_reply_to
        msg["References"] = references
    if envelope.auto_submitted:
        msg["Auto-Submitted"] = envelope.auto_submitted
    msg["X-Auto-Response-Suppress"] = "All"
    msg["X-Helpdesk-Ticket"] = str(envelope.ticket_number)
    msg.set_content(text)
    msg.add_alternative(html, subtype="html")
    return msg
