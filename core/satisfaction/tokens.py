"""The signed token in a survey link: the ticket's id and an HMAC of it (server secret), so a
link cannot be made for another ticket."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid

_DOMAIN = b"satisfaction:"  # the reply-token secret, kept apart from reply tokens by this prefix
_MAC_BYTES = 12


def survey_token(secret: bytes, ticket_id: uuid.UUID) -> str:
    mac = hmac.new(secret, _DOMAIN + ticket_id.bytes, hashlib.sha256).digest()[:_MAC_BYTES]
    return base64.urlsafe_b64encode(ticket_id.bytes + mac).decode().rstrip("=")


def verify_survey_token(secret: bytes, token: str) -> uuid.UUID | None:
    if len(token) > 64:
        return None
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(raw) != 16 + _MAC_BYTES:
        return None
    ticket_id = uuid.UUID(bytes=raw[:16])
    expected = hmac.new(secret, _DOMAIN + raw[:16], hashlib.sha256).digest()[:_MAC_BYTES]
    return ticket_id if hmac.compare_digest(expected, raw[16:]) else None
