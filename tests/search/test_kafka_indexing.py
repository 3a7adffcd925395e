"""With Kafka, the indexer is a consumer group of its own (`helpdesk-search`) on a real broker
(Tansu): every ticket change, and a customer's new name, reach the index through it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.outbound.support import SmtpSink, Tansu
from tests.search.support import create_ticket, numbers, unique
from tests.support.gateway import Running, make_settings, running_gateway


@pytest.fixture
async def over_kafka(database_url: str, tmp_path: Path, tansu: Tansu, sink: SmtpSink) -> AsyncIterator[Running]:
    settings = make_settings(
        database_url, tmp_path / "data", smtp_relay=sink.relay, kafka_bootstrap=tansu.bootstrap,
        kafka_timeout_seconds=2.0, kafka_partitions=2, outbox_poll_seconds=0.05,
    )
    async with running_gateway(settings) as running:
        yield running


async def found(client, q: str, expected: list[int], timeout: float = 60.0) -> None:  # type: ignore[no-untyped-def]
    """Published to Kafka is not yet consumed: wait for the index to say `expected`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while (got := await numbers(client, q)) != expected:
        assert loop.time() < deadline, f"{q!r}: {got} after {timeout}s, expected {expected}"
        await asyncio.sleep(0.1)


async def test_changes_reach_the_index_through_its_own_consumer_group(over_kafka: Running) -> None:
    tag = unique()
    async with over_kafka.http() as client:
        ticket = await create_ticket(client, "Periscope", "the periscope fogs up", tags=[tag])
        await found(client, f"periscope tags:{tag}", [ticket["number"]])
        await client.put(f"/api/v1/tickets/{ticket['id']}", json={"subject": "Binoculars"})
        await found(client, f"binoculars tags:{tag}", [ticket["number"]])
        await client.put(f"/api/v1/customers/{ticket['requester_id']}", json={"name": "Cornelius Fairweather"})
        await found(client, f"fairweather tags:{tag}", [ticket["number"]])
        await client.delete(f"/api/v1/tickets/{ticket['id']}")
        await found(client, f"tags:{tag}", [])
