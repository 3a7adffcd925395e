"""A running gateway for the search suite, tickets made through the API, and waiting for the index."""

from __future__ import annotations

import asyncio
import os
import uuid
from typing import Any

import aiohttp
from sqlalchemy import text

from tests.support.gateway import Running


def unique(prefix: str = "t") -> str:
    return f"{prefix}{uuid.uuid4().hex[:10]}"


async def create_ticket(client: aiohttp.ClientSession, subject: str, body: str, **fields: Any) -> dict:
    payload: dict[str, Any] = {
        "subject": subject, "comment": {"body": body},
        "requester": {"name": "Casey Customer", "email": f"{unique('c')}@customer.test"},
    }
    payload.update(fields)
    response = await client.post("/api/v1/tickets", json=payload)
    assert response.status == 201, await response.text()
    return await response.json()


async def indexed(running: Running, timeout: float = 15.0) -> None:
    """Until every committed change is searchable: nothing left in the outbox or the queue."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        async with running.db.unit_of_work() as session:
            waiting = await session.scalar(text(
                "SELECT (SELECT count(*) FROM outbox_events WHERE published_at IS NULL)"
                " + (SELECT count(*) FROM search_queue)"
            ))
        if not waiting:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{waiting} changes still not indexed after {timeout}s")
        await asyncio.sleep(0.05)


async def search(client: aiohttp.ClientSession, q: str, *, status: int = 200, **params: Any) -> dict:
    response = await client.get("/api/v1/search", params={"q": q, **params})
    body = await response.json()
    assert response.status == status, (q, response.status, body)
    return body


async def numbers(client: aiohttp.ClientSession, q: str, **params: Any) -> list[int]:
    return [r["number"] for r in (await search(client, q, **params))["results"]]


def meili_settings() -> dict[str, Any] | None:
    url = os.environ.get("HELPDESK_TEST_MEILI_URL")
    if not url:
        return None
    return {"meili_url": url, "meili_key": os.environ.get("HELPDESK_TEST_MEILI_KEY"),
            "meili_index_prefix": f"test_{uuid.uuid4().hex[:8]}_"}
