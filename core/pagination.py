"""Opaque keyset cursors: the sort key and value of the last row seen, and its id, base64-encoded.

A cursor records the sort it was made for, so a page asked with another `sort` is refused
rather than silently skipping or repeating rows."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Select, tuple_

MAX_LIMIT = 100
DEFAULT_LIMIT = 25


class BadCursor(ValueError):
    pass


def _encode_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"t": value.isoformat()}
    if hasattr(value, "value") and isinstance(getattr(value, "value"), str):  # an enum member
        return value.value
    return value


def _decode_value(value: Any) -> Any:
    if isinstance(value, dict):
        return datetime.fromisoformat(value["t"])
    if value is None or isinstance(value, (int, str, float)):
        return value
    raise TypeError("not a sort value")


@dataclass(frozen=True)
class Cursor:
    value: Any  # the last row's sort key: a datetime, a number or a string
    id: uuid.UUID
    sort: str = "created_at"  # the column the page was ordered by (without its direction)

    @property
    def created_at(self) -> Any:
        """The sort value, under the name the pages ordered by creation time use."""
        return self.value

    def encode(self) -> str:
        if self.sort == "created_at":  # the original format: cursors already handed out still work
            payload: Any = [self.value.isoformat(), str(self.id)]
        else:
            payload = {"s": self.sort, "v": _encode_value(self.value), "i": str(self.id)}
        raw = json.dumps(payload).encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, value: str) -> Cursor:
        try:
            padded = value + "=" * (-len(value) % 4)
            payload = json.loads(base64.urlsafe_b64decode(padded.encode()))
            if isinstance(payload, dict):
                return cls(_decode_value(payload["v"]), uuid.UUID(payload["i"]), str(payload["s"]))
            created, ident = payload
            return cls(datetime.fromisoformat(created), uuid.UUID(ident))
        except (ValueError, TypeError, KeyError, binascii.Error, json.JSONDecodeError) as exc:
            raise BadCursor("cursor is not one this server issued") from exc

    def require_sort(self, sort: str) -> None:
        """Refuse a cursor made for another order: it would skip or repeat rows."""
        if self.sort != sort:
            raise BadCursor(f"this cursor belongs to a list sorted by {self.sort}; ask again with that sort")


def clamp_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    return max(1, min(MAX_LIMIT, limit))


def page_of(
    rows: list[Any], limit: int, key: str = "created_at", *, value: Any = None
) -> tuple[list[Any], Cursor | None]:
    """`rows` fetched with `LIMIT limit + 1`: the page, and the cursor after it if there is more.

    `key` names the sort; the cursor's value is that attribute of the last row, or
    `value(last)` when the sort key is computed (e.g. a NULL placed last)."""
    if len(rows) <= limit:
        return rows, None
    last = rows[limit - 1]
    sort_value = value(last) if value is not None else getattr(last, key)
    return rows[:limit], Cursor(sort_value, last.id, key)


def keyset(
    query: Select[Any], key: Any, ident: Any, cursor: Cursor | None, *, limit: int,
    descending: bool = False, sort: str = "created_at",
) -> Select[Any]:
    """`query` ordered by (key, id), after `cursor`, one row more than a page (for `page_of`).

    The ORM lists' one pagination rule; the ticket pages (driver SQL) follow the same one."""
    if cursor is not None:
        cursor.require_sort(sort)
        position = tuple_(key, ident)
        after = tuple_(cursor.value, cursor.id)
        query = query.where(position < after if descending else position > after)
    order = (key.desc(), ident.desc()) if descending else (key, ident)
    return query.order_by(*order).limit(limit + 1)
