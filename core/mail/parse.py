"""Raw RFC 5322 bytes -> a `ParsedMail`; pure, no database. Sender faults raise `Unprocessable`."""

from __future__ import annotations

import email
import functools
import re
from dataclasses import dataclass, field
from email import policy
from email.headerregistry import BaseHeader, HeaderRegistry
from email.message import EmailMessage, Message

from core.mail.html import html_to_text, sanitize_html
from core.mail.names import sanitize_filename
from core.mail.text import clean

MAX_SUBJECT = 998
_MSGID_RE = re.compile(r"<([^<>\s]+)>")


class Unprocessable(Exception):
    """The message itself cannot become a ticket: quarantine it with this reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    data: bytes
    content_id: str | None = None
    inline: bool = False


@dataclass
class ParsedMail:
    message_id: str | None
    from_name: str
    from_address: str
    subject: str
    text: str
    html: str | None
    # never stored or shown: its class markers (gmail_quote, divRplyFwdMsg) locate quoted history
    html_source: str | None = None
    to: list[str] = field(default_factory=list)
    cc: list[str] = field(default_factory=list)
    in_reply_to: list[str] = field(default_factory=list)
    references: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    defects: list[str] = field(default_factory=list)
    # lower-cased names of the headers that tell automatic mail apart (see classify.py)
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "text/plain"
    report_type: str | None = None
    # from an RFC 3464 delivery report: who failed, and the Message-IDs of what bounced
    failed_recipients: list[str] = field(default_factory=list)
    returned_message_ids: list[str] = field(default_factory=list)


def message_ids_in(value: str | None) -> list[str]:
    """Every `<id>` in a header value, without the angle brackets."""
    if not value:
        return []
    return [clean(found) for found in _MSGID_RE.findall(str(value))]


def normalize_message_id(value: str | None) -> str | None:
    if not value:
        return None
    found = message_ids_in(value)
    candidate = found[0] if found else clean(str(value)).strip().strip("<>").strip()
    return candidate[:990] or None


class _HeaderKinds(HeaderRegistry):
    """The standard registry, with each header kind's class made once: the standard one makes
    a new class at every header it parses (about a third of the cost of a short header), yet
    the class depends only on the kind (address, unstructured, Content-Type...)."""

    _made: dict[type, type[BaseHeader]] = {}  # a dozen kinds in all, the same for every registry

    def __getitem__(self, name: str) -> type[BaseHeader]:
        kind = self.registry.get(name.lower(), self.default_class)
        made = self._made.get(kind)
        if made is None:
            made = self._made[kind] = type("_" + kind.__name__, (kind, self.base_class), {})
        return made


# short header values recur from message to message (a support address in To, a Content-Type,
# MIME-Version): their parsed headers are shared. Bounded in number and in size, so a sender
# cannot grow it; a parsed header is immutable and depends only on its name and value
SHARED_HEADER_CHARS = 200
_KINDS = _HeaderKinds()


@functools.lru_cache(maxsize=4096)
def _shared_header(name: str, value: str) -> BaseHeader:
    return _KINDS(name, value)


class _OncePerMessage(_HeaderKinds):
    """Parses each distinct header once per message.

    The standard policy parses a header anew on every access, and `get_body` alone asks for
    a part's Content-Type a dozen times: without this, header parsing was two thirds of the
    cost of turning a plain message into a ticket. Header objects are immutable strings, so
    handing out the same one again is safe.
    """

    def __init__(self) -> None:
        super().__init__()
        self._parsed: dict[tuple[str, str], BaseHeader] = {}

    def __call__(self, name: str, value: str) -> BaseHeader:
        key = (name, value)
        header = self._parsed.get(key)
        if header is None:
            header = self._parsed[key] = (
                _shared_header(name, value) if len(value) <= SHARED_HEADER_CHARS else super().__call__(name, value)
            )
        return header


def parse(raw: bytes) -> ParsedMail:
    # a registry (and so a policy) per message: the memo lives and dies with the message
    msg = email.message_from_bytes(raw, policy=policy.default.clone(header_factory=_OncePerMessage()))
    assert isinstance(msg, EmailMessage)
    name, address = _sender(msg)
    text, html, html_source = _bodies(msg)
    return ParsedMail(
        message_id=normalize_message_id(_header(msg, "Message-ID")),
        from_name=name,
        from_address=address,
        subject=_clean_subject(_header(msg, "Subject")),
        text=text,
        html=html,
        html_source=html_source,
        to=_addresses(msg, "To"),
        cc=_addresses(msg, "Cc"),
        in_reply_to=message_ids_in(_header(msg, "In-Reply-To")),
        references=message_ids_in(_header(msg, "References")),
        attachments=list(_attachments(msg)),
        defects=[type(d).__name__ for d in msg.defects],
        headers={name: value for name in CLASSIFYING_HEADERS if (value := _header(msg, name)) is not None},
        content_type=clean(msg.get_content_type()),
        report_type=clean(str(msg.get_param("report-type") or "")) or None
        if msg.get_content_type() == "multipart/report" else None,
        **_delivery_report(msg),
    )


CLASSIFYING_HEADERS = (
    "auto-submitted", "precedence", "x-autoreply", "x-autorespond", "x-auto-response-suppress",
    "list-id", "list-unsubscribe", "return-path", "x-loop",
)


def _delivery_report(msg: EmailMessage) -> dict[str, list[str]]:
    """Failed recipients and the bounced message's Message-ID from a multipart/report."""
    failed: list[str] = []
    returned: list[str] = []
    if msg.get_content_type() != "multipart/report":
        return {"failed_recipients": failed, "returned_message_ids": returned}
    for part in msg.walk():
        ctype = part.get_content_type()
        if ctype == "message/delivery-status":
            for block in part.get_payload() if part.is_multipart() else []:
                action = str(block.get("Action", "")).strip().lower()
                recipient = str(block.get("Final-Recipient") or block.get("Original-Recipient") or "")
                if action == "failed" and ";" in recipient:
                    failed.append(clean(recipient.split(";", 1)[1]).strip().strip("<>").lower())
        elif ctype in ("message/rfc822", "text/rfc822-headers", "message/rfc822-headers"):
            inner = part.get_payload(0) if part.is_multipart() else None
            if inner is None:
                try:
                    inner = email.message_from_bytes(part.get_payload(decode=True) or b"", policy=policy.default)
                except Exception:
                    continue
            returned += message_ids_in(_header(inner, "Message-ID"))
    return {"failed_recipients": failed, "returned_message_ids": returned}


def _header(msg: Message, name: str) -> str | None:
    """A header's decoded value; a header the parser chokes on counts as absent."""
    try:
        value = msg.get(name)
    except Exception:  # malformed header values raise from the header registry
        return None
    return None if value is None else clean(str(value))


def _sender(msg: EmailMessage) -> tuple[str, str]:
    try:
        froms = msg.get_all("From") or []
    except Exception:  # the stdlib's address parser can raise on hostile input (e.g. "0@")
        raise Unprocessable("From header is not a valid address") from None
    if not froms:
        raise Unprocessable("no From header")
    if len(froms) > 1:
        raise Unprocessable("more than one From header")
    try:
        addresses = froms[0].addresses
    except Exception:
        addresses = ()
    if len(addresses) != 1:
        raise Unprocessable(
            "From must name exactly one mailbox" if addresses else "From header is not a valid address"
        )
    mailbox = addresses[0]
    address = clean(mailbox.addr_spec or "").strip()
    # a strict re-parse: rejects group syntax, missing domains and smuggled commas
    local, _, domain = address.rpartition("@")
    if not local or not domain or any(c in address for c in ' ,;<>()[]\\"') and not local.startswith('"'):
        raise Unprocessable(f"From address is not valid: {address!r}")
    if not address.isprintable():
        raise Unprocessable(f"From address is not valid: {address!r}")
    return clean(mailbox.display_name).strip()[:255], address.lower()


def _addresses(msg: EmailMessage, name: str) -> list[str]:
    try:
        headers = msg.get_all(name) or []
        found = [clean(a.addr_spec).lower() for h in headers for a in h.addresses if a.addr_spec]
        return [a for a in found if a.isprintable() and "\ufffd" not in a]
    except Exception:
        return []


def _clean_subject(value: str | None) -> str:
    subject = " ".join((value or "").split())  # folded and control whitespace
    subject = "".join(ch for ch in subject if ch.isprintable())
    return subject[:MAX_SUBJECT] or "(no subject)"


def _content(part: Message) -> str:
    """Decoded text of a part; unknown charsets and bad bytes become U+FFFD, never a crash."""
    try:
        content = part.get_content()  # type: ignore[attr-defined]
        if isinstance(content, str):
            return clean(content)
    except Exception:
        pass
    payload = part.get_payload(decode=True) or b""
    if isinstance(payload, str):
        return clean(payload)
    charset = part.get_content_charset() or "utf-8"
    try:
        return clean(payload.decode(charset, errors="replace"))
    except (LookupError, ValueError):  # unknown charset, or a name with a NUL in it
        return clean(payload.decode("utf-8", errors="replace"))


def _bodies(msg: EmailMessage) -> tuple[str, str | None, str | None]:
    """Plain text, sanitized HTML, and the HTML as sent (only for finding quoted parts)."""
    try:
        plain = msg.get_body(preferencelist=("plain",))
        rich = msg.get_body(preferencelist=("html",))
    except Exception:
        plain = rich = None
    source = _content(rich) if rich is not None else None
    html = sanitize_html(source) if source is not None else None
    if plain is not None:
        text = _content(plain)
    elif html is not None:
        text = html_to_text(html)
    elif not msg.is_multipart() and msg.get_content_maintype() == "text":
        text = _content(msg)
    else:
        text = ""
    return text.replace("\r\n", "\n").strip("\n"), html, source


def _attachments(msg: EmailMessage):
    body_parts = set()
    for pref in (("plain",), ("html",)):
        try:
            part = msg.get_body(preferencelist=pref)
        except Exception:
            part = None
        if part is not None:
            body_parts.add(id(part))
    for part in msg.walk():
        if part.is_multipart() or id(part) in body_parts or not _is_attachment(part):
            continue
        try:
            data = part.get_payload(decode=True) or b""
        except Exception:
            data = b""
        if isinstance(data, str):
            data = data.encode("utf-8", errors="replace")
        if part.get_content_type() == "message/rfc822" and not data:
            data = part.get_payload(0).as_bytes() if part.get_payload() else b""
        content_id = normalize_message_id(_header(part, "Content-ID"))
        try:
            disposition = part.get_content_disposition()
        except Exception:
            disposition = None
        yield Attachment(
            filename=sanitize_filename(_filename(part), part.get_content_type()),
            content_type=clean(part.get_content_type()),  # a NUL in it must not reach PostgreSQL
            data=data,
            content_id=content_id,
            inline=disposition == "inline",
        )


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        return None
    return clean(name) if name else None


def _is_attachment(part: Message) -> bool:
    try:
        disposition = part.get_content_disposition()
    except Exception:
        disposition = None
    if disposition == "attachment":
        return True
    if _filename(part) or part.get("Content-ID"):
        return True
    # a non-text leaf (image, pdf, nested message) outside the chosen bodies
    return part.get_content_maintype() not in ("text", "multipart")
