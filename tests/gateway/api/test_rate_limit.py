"""Per-token rate limiting: 429 with Retry-After, other tokens unaffected."""

from __future__ import annotations

from core.agents.service import agent_service
from core.enums import AgentRole
from gateway.http.ratelimit import RateLimiter
from tests.support.gateway import make_settings, running_gateway


def test_bucket_refills_over_time() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=60, burst=2, clock=lambda: now[0])
    assert [limiter.take("t") for _ in range(2)] == [0.0, 0.0]
    assert limiter.take("t") == 1.0  # one a second: the next in a second
    assert limiter.take("other") == 0.0
    now[0] = 1.0
    assert limiter.take("t") == 0.0


async def test_429_with_retry_after_per_token(database_url: str, tmp_path) -> None:
    settings = make_settings(database_url, tmp_path, api_rate_per_minute=60, api_rate_burst=3)
    async with running_gateway(settings) as gw:
        async with gw.db.unit_of_work() as session:
            other = await agent_service.token_for(session, email="rl@agents.test", name="rl", role=AgentRole.agent)
        async with gw.http() as client:
            statuses = [(await client.get("/api/v1/groups")).status for _ in range(4)]
            assert statuses == [200, 200, 200, 429]
            limited = await client.get("/api/v1/groups")
            assert limited.status == 429 and int(limited.headers["Retry-After"]) >= 1
            assert (await limited.json())["error"]["code"] == "rate_limited"
        async with gw.http(other) as client:
            assert (await client.get("/api/v1/groups")).status == 200
