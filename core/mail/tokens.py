"""Reply tokens: `support+<token>@…` names a ticket and the one address it was sent to.

token = base32(ticket number, 5 bytes ‖ HMAC-SHA256(secret, ticket id ‖ address [‖ scope])[:10]).
The number only finds the ticket; the MAC, bound to the recipient's address, is the proof,
so a token leaked to someone else is useless from their address and no token can be made
from a ticket number. A token sent with an internal note carries the `internal` scope in its
MAC: a reply to it is an internal comment whatever the mail client does with the headers.
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


PUBLIC = "public"
INTERNAL = "internal"


def _mac(secret: bytes, ticket_id: uuid.UUID, address: str, scope: str = PUBLIC) -> bytes:
    message = ticket_id.bytes + address.strip().lower().encode("utf-8")
    if scope != PUBLIC:  # public tokens keep the MAC they always had: tokens already sent stay valid
        message += b"\x00" + scope.encode()
    return hmac.new(secret, message, hashlib.sha256).digest()[:_MAC_BYTES]


def make_token(
    secret: bytes, *, ticket_number: int, ticket_id: uuid.UUID, address: str, scope: str = PUBLIC
) -> str:
    payload = ticket_number.to_bytes(_NUMBER_BYTES, "big") + _mac(secret, ticket_id, address, scope)
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


def token_scope(secret: bytes, token: str, *, ticket_id: uuid.UUID, address: str) -> str | None:
    """`public` or `internal` when the token verifies for this ticket and address, else None."""
    payload = _decode(token)
    if payload is None:
        return None
    for scope in (PUBLIC, INTERNAL):
        if hmac.compare_digest(payload[_NUMBER_BYTES:], _mac(secret, ticket_id, address, scope)):
            return scope
    return None


def verify_token(secret: bytes, token: str, *, ticket_id: uuid.UUID, address: str) -> bool:
    return token_scope(secret, token, ticket_id=ticket_id, address=address) is not None


def reply_address(mailbox: str, token: str) -> str:
    local, _, domain = mailbox.partition("@")
    return f"{local}+{token}@{domain}"


# VERP: the envelope sender of each delivery is `support+bounces-<token>@…`, the token naming the
# delivery and (by its MAC) the recipient, so a delivery report proves which mail to whom failed
BOUNCE_PREFIX = "bounces-"
_BOUNCE_LENGTH = 42  # base32 of 16 + 10 bytes, no padding


def _bounce_mac(secret: bytes, delivery_id: uuid.UUID, recipient: str) -> bytes:
    message = b"bounce\x00" + delivery_id.bytes + recipient.strip().lower().encode("utf-8")
    return hmac.new(secret, message, hashlib.sha256).digest()[:_MAC_BYTES]


def make_bounce_token(secret: bytes, *, delivery_id: uuid.UUID, recipient: str) -> str:
    payload = delivery_id.bytes + _bounce_mac(secret, delivery_id, recipient)
    return base64.b32encode(payload).decode().rstrip("=").lower()


def bounce_delivery_id(token: str) -> uuid.UUID | None:
    """The delivery a well-formed bounce token claims, unverified."""
    if len(token) != _BOUNCE_LENGTH:
        return None
    try:
        payload = base64.b32decode(token.upper() + "=" * 6)
    except (binascii.Error, ValueError):
        return None
    return uuid.UUID(bytes=payload[:16])


def verify_bounce_token(secret: bytes, token: str, *, delivery_id: uuid.UUID, recipient: str) -> bool:
    try:
        payload = base64.b32decode(token.upper() + "=" * 6)
    except (binascii.Error, ValueError):
        return False
    return hmac.compare_digest(payload[16:], _bounce_mac(secret, delivery_id, recipient))
