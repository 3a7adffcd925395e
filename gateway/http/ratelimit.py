"""Requests per token: a token bucket each, refilled continuously; over it, 429 with Retry-After.

Here per process: with several API processes the effective limit is their sum. With
`HELPDESK_REDIS_URL` the bucket lives in Redis instead (core/shared_state.py), one for all.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Protocol


class Limiter(Protocol):
    @property
    def enabled(self) -> bool: ...

    async def acquire(self, key: str) -> float: ...

    def retry_after(self, wait: float) -> str: ...


@dataclass
class Bucket:
    tokens: float
    updated: float


@dataclass
class RateLimiter:
    per_minute: int
    burst: int
    clock: object = time.monotonic
    _buckets: dict[str, Bucket] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    def take(self, key: str) -> float:
        """Spends one request of `key`'s budget: 0 if allowed, else seconds until it would be."""
        now = self.clock()  # type: ignore[operator]
        rate = self.per_minute / 60.0
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = Bucket(tokens=float(self.burst), updated=now)
        bucket.tokens = min(float(self.burst), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / rate

    def waiting(self, key: str) -> float:
        """Seconds until `key` may spend again (0 if it may now), spending nothing."""
        bucket = self._buckets.get(key)
        if bucket is None or not self.enabled:
            return 0.0
        rate = self.per_minute / 60.0
        tokens = min(float(self.burst), bucket.tokens + (self.clock() - bucket.updated) * rate)  # type: ignore[operator]
        return 0.0 if tokens >= 1.0 else (1.0 - tokens) / rate

    def forget_some(self, keep: int = 10_000) -> None:
        """Bounds memory under a spray of client addresses: the oldest buckets go."""
        while len(self._buckets) > keep:
            self._buckets.pop(next(iter(self._buckets)))
    async def acquire(self, key: str) -> float:
        return self.take(key)

    @staticmethod
    def retry_after(wait: float) -> str:
        return str(max(1, math.ceil(wait)))
