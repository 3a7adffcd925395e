"""Opaque keyset cursors: `(created_at, id)` of the last row seen, base64-encoded."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

MAX_LIMIT = 100
DEFAULT_LIMIT = 25


class BadCursor(ValueError):
    pass


@dataclass(frozen=True)
class Cursor:
    created_at: datetime
    id: uuid.UUID

    def encode(self) -> str:
        raw = json.dumps([self.created_at.isoformat(), str(self.id)]).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str) -> Cursor:
        try:
            padded = value + "=" * (-len(value) % 4)
            created, ident = json.loads(base64.urlsafe_b64decode(padded.encode()))
            return cls(datetime.fromisoformat(created), uuid.UUID(ident))
        except (ValueError, TypeError, binascii.Error, json.JSONDecodeError) as exc:
            raise BadCursor("cursor is not one this server issued") from exc


def clamp_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    return max(1, min(MAX_LIMIT, limit))


def page_of(rows: list[Any], limit: int, key: str = "created_at") -> tuple[list[Any], Cursor | None]:
    """`rows` fetched with `LIMIT limit + 1`: the page, and the cursor after it if there is more."""
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    return rows[:limit], Cursor(getattr(last, key), last.id)
