"""State every API process must agree on, kept in Redis when `HELPDESK_REDIS_URL` is set:
one token bucket per API token for all processes, and a broadcast that makes every process
forget its cached tokens the moment one is revoked or an agent changes.

Redis is a helper, not a dependency of correctness: when it cannot be reached, each process
limits on its own (as without Redis) and cached tokens expire after the auth-cache time."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field

from redis.asyncio import Redis
from redis.exceptions import RedisError

from core.agents.tokens import TokenCache

log = logging.getLogger(__name__)

INVALIDATE_CHANNEL = "helpdesk:auth-invalidate"
RATE_PREFIX = "helpdesk:rate:"
# the refill, the spend and the answer in one atomic round trip; Redis's clock, so processes
# on hosts with different clocks share one bucket fairly. Floats go back as strings (a Lua
# number would be truncated to an integer reply).
TOKEN_BUCKET = """
local rate = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local state = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(state[1]) or burst
local ts = tonumber(state[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local wait = 0
if tokens >= 1 then tokens = tokens - 1 else wait = (1 - tokens) / rate end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil(burst / rate * 1000) + 1000)
return tostring(wait)
"""
ERRORS = (RedisError, OSError, asyncio.TimeoutError)
# after a failure, requests do not wait on Redis again for this long (each try may take the
# connect timeout): the local bucket answers meanwhile
RETRY_AFTER_FAILURE = 5.0


class Complaints:
    """One warning per minute about an unreachable Redis, not one per request."""

    def __init__(self) -> None:
        self._last = 0.0

    def warn(self, what: str, exc: BaseException) -> None:
        now = time.monotonic()
        if now - self._last > 60:
            self._last = now
            log.warning("redis unavailable (%s): %s", what, exc)


def connect(url: str) -> Redis:
    # a slow Redis must not become a slow API: fail fast and fall back
    return Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)


class SharedRateLimiter:
    """Spends one request of a token's budget in Redis; falls back to `local` when it is down."""

    def __init__(self, client: Redis, *, per_minute: int, burst: int, local) -> None:  # type: ignore[no-untyped-def]
        self.per_minute = per_minute
        self.burst = burst
        self.local = local
        self._script = client.register_script(TOKEN_BUCKET)
        self._complaints = Complaints()
        self._down_until = 0.0

    @property
    def enabled(self) -> bool:
        return self.per_minute > 0

    async def acquire(self, key: str) -> float:
        if time.monotonic() < self._down_until:
            return await self.local.acquire(key)
        try:
            wait = await self._script(keys=[RATE_PREFIX + key], args=[self.per_minute / 60.0, self.burst])
        except ERRORS as exc:
            self._complaints.warn("rate limit; limiting per process meanwhile", exc)
            self._down_until = time.monotonic() + RETRY_AFTER_FAILURE
            return await self.local.acquire(key)
        return float(wait)

    def retry_after(self, wait: float) -> str:
        return self.local.retry_after(wait)


@dataclass
class Broadcast:
    """A message to every process subscribed to `channel` (this one included)."""

    url: str
    channel: str
    on_message: Callable[[], None]
    publisher: Redis
    subscribed: asyncio.Event = field(default_factory=asyncio.Event)
    _task: asyncio.Task[None] | None = None
    _complaints: Complaints = field(default_factory=Complaints)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name=f"subscriber {self.channel}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task

    async def publish(self) -> None:
        try:
            await self.publisher.publish(self.channel, b"1")
        except ERRORS as exc:
            self._complaints.warn("broadcast", exc)

    async def _listen(self) -> None:
        # a connection of its own with no read timeout: it waits for messages
        client = Redis.from_url(self.url, socket_connect_timeout=2, health_check_interval=15)
        try:
            while True:
                pubsub = client.pubsub()
                try:
                    await pubsub.subscribe(self.channel)
                    self.on_message()  # whatever was said while we were away is assumed said
                    self.subscribed.set()
                    async for message in pubsub.listen():
                        if message["type"] == "message":
                            self.on_message()
                except ERRORS as exc:
                    self.subscribed.clear()
                    self._complaints.warn("subscription", exc)
                    await asyncio.sleep(1)
                finally:
                    with suppress(*ERRORS):
                        await pubsub.aclose()
        finally:
            await client.aclose()


@dataclass
class AuthChanges:
    """A token revoked, an agent deactivated or its role changed: every process forgets the
    tokens it has cached (this one at once, the others through the broadcast, if any)."""

    cache: TokenCache
    broadcast: Broadcast | None = None

    async def announce(self) -> None:
        self.cache.clear()
        if self.broadcast is not None:
            await self.broadcast.publish()
