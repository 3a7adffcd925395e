"""Two API processes with one Redis: one rate limit per token for both, and a revoked token or a
deactivated agent refused by both at once (their auth caches would otherwise keep it for minutes)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

from core.agents.service import agent_service
from core.enums import AgentRole
from tests.outbound.support import eventually
from tests.support.gateway import Running, make_settings, running_gateway
from tests.support.process import free_port


@asynccontextmanager
async def two_fronts(database_url: str, tmp_path: Path, **overrides: object) -> AsyncIterator[list[Running]]:
    async with AsyncExitStack() as stack:
        fronts = [
            await stack.enter_async_context(running_gateway(make_settings(
                database_url, tmp_path / f"front{i}", roles=("api",), **overrides)))
            for i in range(2)
        ]
        yield fronts


async def new_token(front: Running, role: AgentRole = AgentRole.agent) -> str:
    async with front.db.unit_of_work() as session:
        email = f"shared-{uuid.uuid4().hex[:8]}@agents.test"
        return await agent_service.token_for(session, email=email, name="Shared", role=role)


async def status_of(front: Running, token: str, path: str = "/api/v1/tickets?limit=1") -> int:
    async with front.http(token) as client, client.get(path) as response:
        return response.status


async def test_one_token_bucket_for_every_api_process(database_url: str, redis_url: str, tmp_path: Path) -> None:
    # a minute per request: no refill to speak of while the test runs
    async with two_fronts(database_url, tmp_path, redis_url=redis_url,
                          api_rate_burst=5, api_rate_per_minute=1) as fronts:
        token = await new_token(fronts[0])
        statuses = [await status_of(fronts[i % 2], token) for i in range(14)]
    # per process it would be 10 (5 each); shared, 5 (6 if a minute went by)
    assert statuses.count(200) in (5, 6), statuses
    assert statuses.count(429) == 14 - statuses.count(200)


async def test_a_revoked_token_is_refused_by_every_process(database_url: str, redis_url: str, tmp_path: Path) -> None:
    async with two_fronts(database_url, tmp_path, redis_url=redis_url, api_auth_cache_seconds=600) as (a, b):
        token = await new_token(a)
        assert (await status_of(a, token), await status_of(b, token)) == (200, 200)  # both cache it
        async with a.http(token) as client:
            async with client.get("/api/v1/tokens") as response:
                [mine] = (await response.json())["tokens"]
            async with client.delete(f"/api/v1/tokens/{mine['id']}") as response:
                assert response.status == 204

        async def refused() -> bool:
            return await status_of(b, token) == 401
        await eventually(refused, timeout=10, what="the other process to refuse the revoked token")
        assert await status_of(a, token) == 401


async def test_a_deactivated_agent_is_refused_by_every_process(database_url: str, redis_url: str, tmp_path: Path) -> None:
    async with two_fronts(database_url, tmp_path, redis_url=redis_url, api_auth_cache_seconds=600) as (a, b):
        token = await new_token(a)
        async with b.http(token) as client, client.get("/api/v1/agents?limit=100") as response:
            assert response.status == 200
        async with a.http(token) as client, client.get("/api/v1/tokens") as response:
            agent_id = (await response.json())["tokens"][0]["agent_id"]
        async with a.http() as admin, admin.put(f"/api/v1/agents/{agent_id}", json={"active": False}) as response:
            assert response.status in (200, 204), await response.text()

        async def refused() -> bool:
            return await status_of(b, token) == 401
        await eventually(refused, timeout=10, what="the other process to refuse the deactivated agent")


async def test_an_unreachable_redis_falls_back_to_per_process_limits(database_url: str, tmp_path: Path) -> None:
    dead = f"redis://127.0.0.1:{free_port()}/0"
    settings = make_settings(database_url, tmp_path / "data", roles=("api",), redis_url=dead,
                             api_rate_burst=3, api_rate_per_minute=1)
    async with running_gateway(settings) as front:
        token = await new_token(front)
        statuses = [await status_of(front, token) for _ in range(5)]
    assert statuses[:3] == [200, 200, 200] and set(statuses[3:]) <= {429, 200}
    assert statuses.count(429) >= 1  # still limited (here, by this process alone)
