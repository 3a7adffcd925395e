"""What every search backend does, and the shapes it answers with."""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import asyncpg

from core.db import Database
from search.resolve import Resolved

# highlight markers: control characters, which the query cleaner never lets through and the
# documents' text never shows, so escaping can happen after the backend marked the matches
MARK_START, MARK_END = "\x02", "\x03"
FACETS = ("status", "priority", "channel", "group")
EXACT_COUNT_LIMIT = 10_000
# markup characters a backend may hide from its highlighter (private-use code points)
_UNHIDE = {0xE000: "<", 0xE001: ">", 0xE002: "&"}


@dataclass(frozen=True)
class TicketHit:
    ticket_id: uuid.UUID
    score: float
    highlight: str  # HTML: escaped text with <mark>…</mark>
    # the ticket's view columns (core.tickets.views) when the backend read them with the hit
    ticket: Mapping[str, Any] | None = None


@dataclass
class TicketPage:
    hits: list[TicketHit]
    count: int
    count_approximate: bool = False
    # field ▸ value ▸ count; `group` values are group ids (None: no group), priority names
    facets: dict[str, dict[Any, int]] = field(default_factory=dict)
    next_cursor: str | None = None
    group_names: dict[str, str] = field(default_factory=dict)  # group id ▸ name, where known


Progress = Callable[[int, int], None]


class SearchBackend(Protocol):
    name: str

    async def start(self) -> None:
        """Ready to serve (a remote index's settings applied)."""

    async def close(self) -> None: ...

    async def search(
        self, connection: asyncpg.Connection, query: Resolved, *, limit: int, cursor: str | None,
        fingerprint: str,
    ) -> TicketPage: ...

    async def index(self, connection: asyncpg.Connection, ticket_ids: Sequence[uuid.UUID]) -> None:
        """Brings these tickets' documents up to date with the database (deleted ones removed),
        inside the indexer's transaction on `connection`; raises if the index refused them."""

    async def rebuild(self, db: Database, progress: Progress) -> int:
        """Builds a whole new index aside from the one being served, then swaps it in;
        returns the number of tickets indexed."""


class BadCursor(ValueError):
    pass


def encode_cursor(values: list[Any], fingerprint: str) -> str:
    raw = json.dumps([fingerprint, *values], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, fingerprint: str) -> list[Any]:
    """The values after the fingerprint; raises `BadCursor` for a cursor of another query."""
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise BadCursor("cursor is not one this server issued") from exc
    if not isinstance(values, list) or not values or values[0] != fingerprint:
        raise BadCursor("this cursor belongs to another query")
    return values[1:]


def query_fingerprint(*parts: str) -> str:
    return hashlib.sha256("\x00".join(parts).encode()).hexdigest()[:16]


def marked_to_html(text: str) -> str:
    """Text with MARK_START/MARK_END around matches ▸ escaped HTML with <mark> around them."""
    text = text.translate(_UNHIDE)
    out, open_ = [], False
    for i, piece in enumerate(text.replace(MARK_END, MARK_START).split(MARK_START)):
        if i:  # a marker: open or close, whichever balances (a cut snippet may lose one)
            out.append("</mark>" if open_ else "<mark>")
            open_ = not open_
        out.append(html.escape(piece, quote=True))
    if open_:
        out.append("</mark>")
    return "".join(out).replace("<mark></mark>", "")


def strip_markers(text: str) -> str:
    return text.replace(MARK_START, "").replace(MARK_END, "")
