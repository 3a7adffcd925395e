"""Reply tokens: `support+<token>@…` names a ticket and the one address it was sent to.

token = base32(ticket number, 5 bytes ‖ HMAC-SHA256(secret, ticket id ‖ address)[:10]).
The number only finds the ticket; the MAC, bound to the recipient's address, is the proof,
so a token leaked to someone else is useless from their address and no token can be made
from a ticket number.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import uuid

_NUMBER_BYTES = 5
_MAC_BYTES = 10
TOKEN_LENGTH = 24  # base32 of 15 bytes, no padding


def _mac(secret: bytes, ticket_id: uuid.UUID, address: str) -> bytes:
    message = ticket_id.bytes + address.strip().lower().encode("utf-8")
    return hmac.new(secret, message, hashlib.sha256).digest()[:_MAC_BYTES]


def make_token(secret: bytes, *, ticket_number: int, ticket_id: uuid.UUID, address: str) -> str:
    payload = ticket_number.to_bytes(_NUMBER_BYTES, "big") + _mac(secret, ticket_id, address)
    return base64.b32encode(payload).decode().rstrip("=").lower()


def _decode(token: str) -> bytes | None:
    if len(token) != TOKEN_LENGTH:
        return None
    try:
        return base64.b32decode(token.upper())
    except (binascii.Error, ValueError):
        return None


def token_number(token: str) -> int | None:
    """The ticket number a well-formed token claims, unverified; None if malformed."""
    payload = _decode(token)
    return None if payload is None else int.from_bytes(payload[:_NUMBER_BYTES], "big")


def verify_token(secret: bytes, token: str, *, ticket_id: uuid.UUID, address: str) -> bool:
    payload = _decode(token)
    if payload is None:
        return False
    return hmac.compare_digest(payload[_NUMBER_BYTES:], _mac(secret, ticket_id, address))


def reply_address(mailbox: str, token: str) -> str:
    local, _, domain = mailbox.partition("@")
    return f"{local}+{token}@{domain}"
