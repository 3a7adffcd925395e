"""Timestamps set in Python (so they are known without a round trip after a flush)."""

from __future__ import annotations

from datetime import datetime, timezone


def utcnow() -> datetime:
    return datetime.now(timezone.utc)
