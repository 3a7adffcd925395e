"""A budget for acknowledgements: globally and per sending host, besides the per-address cap.

Forged senders are free to make: 300 of them in a minute would otherwise get 300
acknowledgements (backscatter, and our domain's reputation spent). Token buckets, per mailer
process (like the API's rate limits without Redis): a burst, refilled at so many per hour.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

_MAX_HOSTS = 10_000  # buckets kept; the fullest (least used) are forgotten first


@dataclass
class Bucket:
    capacity: float
    per_second: float
    tokens: float
    at: float

    def take(self, now: float) -> bool:
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.per_second)
        self.at = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


@dataclass
class AckBudget:
    burst: int
    per_hour: int
    host_burst: int
    host_per_hour: int
    clock: Callable[[], float] = time.monotonic
    _global: Bucket | None = None
    _hosts: dict[str, Bucket] = field(default_factory=dict)

    def _bucket(self, burst: int, per_hour: int, now: float) -> Bucket:
        return Bucket(float(burst), per_hour / 3600.0, float(burst), now)

    def take(self, host: str | None) -> str | None:
        """None when an acknowledgement may go; else which budget is spent (`global`, `host`)."""
        now = self.clock()
        if self._global is None:
            self._global = self._bucket(self.burst, self.per_hour, now)
        bucket = None
        if host:
            bucket = self._hosts.get(host)
            if bucket is None:
                if len(self._hosts) >= _MAX_HOSTS:
                    self._hosts.pop(max(self._hosts, key=lambda h: self._hosts[h].tokens))
                bucket = self._hosts[host] = self._bucket(self.host_burst, self.host_per_hour, now)
            if not bucket.take(now):
                return "host"
        if not self._global.take(now):
            if bucket is not None:
                bucket.tokens += 1  # not spent: nothing was sent
            return "global"
        return None
