"""Is this mail from a person, or automatic (auto-reply, bounce, bulk)? Pure, no database.

Automatic mail is recorded on its ticket but never answered and never reopens anything.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass

from core.mail.parse import ParsedMail

_DAEMONS = ("mailer-daemon", "postmaster")
_BULK_PRECEDENCE = ("bulk", "junk", "list")
# local parts of senders no person reads: never followers, never threaded by a subject tag
_ROBOT_LOCAL = re.compile(
    r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|mailer[-_.]?daemon|postmaster|notifications?|bounces?)"
    r"(?:[-+_.].*)?$",
    re.IGNORECASE,
)


def is_robot_address(address: str) -> bool:
    return bool(_ROBOT_LOCAL.match(address.rpartition("@")[0] or address))


class MailKind(str, enum.Enum):
    human = "human"
    auto_reply = "auto_reply"
    bounce = "bounce"
    bulk = "bulk"


@dataclass(frozen=True)
class Classification:
    kind: MailKind
    reason: str | None = None

    @property
    def automatic(self) -> bool:
        return self.kind is not MailKind.human


def classify(mail: ParsedMail, *, envelope_sender: str) -> Classification:
    h = mail.headers
    local = mail.from_address.partition("@")[0]
    if mail.content_type == "multipart/report" and (mail.report_type or "").lower() == "delivery-status":
        return Classification(MailKind.bounce, "RFC 3464 delivery status notification")
    if local in _DAEMONS:
        return Classification(MailKind.bounce, f"sender is {local}")
    auto_submitted = h.get("auto-submitted", "").strip().lower()
    if auto_submitted and not auto_submitted.startswith("no"):
        return Classification(MailKind.auto_reply, f"Auto-Submitted: {auto_submitted}")
    for name in ("x-autoreply", "x-autorespond", "x-auto-response-suppress"):
        if name in h:
            return Classification(MailKind.auto_reply, f"{name} header present")
    precedence = h.get("precedence", "").strip().lower()
    if precedence == "auto_reply":  # RFC 3834 §2 notes it; some responders send only this
        return Classification(MailKind.auto_reply, "Precedence: auto_reply")
    if precedence in _BULK_PRECEDENCE:
        return Classification(MailKind.bulk, f"Precedence: {precedence}")
    if "list-id" in h:
        return Classification(MailKind.bulk, "List-Id header present")
    if envelope_sender.strip("<> ") == "" or h.get("return-path", "").strip() == "<>":
        return Classification(MailKind.auto_reply, "null envelope sender (Return-Path: <>)")
    return Classification(MailKind.human)
