"""The outbox relay: nothing before commit, everything after; Kafka keyed by ticket, once."""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from aiokafka import AIOKafkaConsumer
from sqlalchemy import select

from core.db import Database
from core.events import TOPIC_COMMENTED, TOPIC_CREATED, TOPICS, OutboxEvent, emit
from core.metrics import Metrics
from outbound.kafka import KafkaPublisher
from outbound.relay import InProcessPublisher, OutboxRelay
from tests.outbound.support import Tansu


def fake_ticket() -> dict[str, Any]:
    """A snapshot as events carry it (events are validated when they are made)."""
    return {
        "id": str(uuid.uuid4()), "number": 1, "external_id": None, "subject": "s", "description": "",
        "status": "new", "priority": "normal", "type": None, "channel": "api", "requester_id": str(uuid.uuid4()),
        "assignee_id": None, "group_id": None, "organization_id": None, "tags": [], "custom_fields": {},
        "sla_breach_at": None, "first_response_at": None, "solved_at": None,
        "created_at": "2026-11-29T00:00:00+00:00", "updated_at": "2026-11-29T00:00:00+00:00",
    }


async def test_nothing_is_published_before_commit_and_everything_after(db: Database) -> None:
    seen: list[dict[str, Any]] = []

    async def record(events: list[dict[str, Any]]) -> None:
        seen.extend(events)

    relay = OutboxRelay(db, InProcessPublisher([record]), Metrics())
    async with db.unit_of_work() as session:
        event = emit(session, topic=TOPIC_CREATED, ticket=fake_ticket())
        await session.flush()
        await relay.drain()
        assert str(event.id) not in {e["event_id"] for e in seen}
    await relay.drain()
    assert [e for e in seen if e["event_id"] == str(event.id)] != []
    async with db.unit_of_work() as session:
        stored = await session.get(OutboxEvent, event.id)
    assert stored.published_at is not None


async def test_a_relay_told_to_wait_for_ever_still_publishes(db: Database) -> None:
    """`defer_while` (mail arriving, tickets behind) delays notifications; it cannot stop them."""
    seen: list[str] = []

    async def record(events: list[dict[str, Any]]) -> None:
        seen.extend(e["event_id"] for e in events)

    relay = OutboxRelay(db, InProcessPublisher([record]), Metrics(), poll_seconds=0.05,
                        defer_while=lambda: True)
    async with db.unit_of_work() as session:
        event = emit(session, topic=TOPIC_CREATED, ticket=fake_ticket())
    await relay.start()
    try:
        for _ in range(100):
            if str(event.id) in seen:
                break
            await asyncio.sleep(0.05)
        assert str(event.id) in seen  # while still running (stopping ends any wait)
    finally:
        await relay.stop()


async def test_a_failing_consumer_leaves_the_row_for_later(db: Database) -> None:
    calls: list[str] = []

    async def broken(events: list[dict[str, Any]]) -> None:
        calls.extend(e["event_id"] for e in events)
        raise RuntimeError("database trouble")

    async with db.unit_of_work() as session:
        event = emit(session, topic=TOPIC_CREATED, ticket=fake_ticket())
    relay = OutboxRelay(db, InProcessPublisher([broken]), Metrics())
    try:
        await relay.drain()
    except RuntimeError:
        pass
    async with db.unit_of_work() as session:
        stored = await session.get(OutboxEvent, event.id)
    assert str(event.id) in calls
    assert stored.published_at is None and stored.attempts == 1 and "database trouble" in stored.last_error
    await OutboxRelay(db, InProcessPublisher([lambda events: asyncio.sleep(0)]), Metrics()).drain()


async def read_topics(bootstrap: str, expected: int, event_ids: set[str]) -> list[Any]:
    consumer = AIOKafkaConsumer(*TOPICS, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                                enable_auto_commit=False, group_id=None)
    await consumer.start()
    found: list[Any] = []
    try:
        deadline = asyncio.get_running_loop().time() + 20
        while len(found) < expected and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=200)).values():
                found += [r for r in records if json.loads(r.value)["event_id"] in event_ids]
        # anything extra (a second copy) would arrive right behind: read once more
        for records in (await consumer.getmany(timeout_ms=300)).values():
            found += [r for r in records if json.loads(r.value)["event_id"] in event_ids]
    finally:
        await consumer.stop()
    return found


async def test_several_relays_publish_each_row_once_keyed_and_in_order_per_ticket(
    db: Database, tansu: Tansu
) -> None:
    tickets = [fake_ticket() for _ in range(6)]
    ids: list[str] = []
    for seq in range(10):  # one transaction per event: a real history of six tickets
        for ticket in tickets:
            async with db.unit_of_work() as session:
                extra = {} if seq == 0 else {
                    "comment": {"visibility": "public", "author_type": "customer", "body": str(seq)},
                }
                topic = TOPIC_CREATED if seq == 0 else TOPIC_COMMENTED
                ids.append(str(emit(session, topic=topic, ticket=ticket, **extra).id))
    relays = [
        OutboxRelay(db, KafkaPublisher(tansu.bootstrap, partitions=3, replication=1, timeout=10), Metrics(),
                    batch_size=7)
        for _ in range(3)
    ]
    try:
        await asyncio.gather(*(r.drain() for r in relays))
    finally:
        await asyncio.gather(*(r.publisher.close() for r in relays))
    records = await read_topics(tansu.bootstrap, len(ids), set(ids))
    assert sorted(json.loads(r.value)["event_id"] for r in records) == sorted(ids)
    for ticket in tickets:  # Kafka orders within a topic's partition: one key, one partition
        mine = [r for r in records if r.key == ticket["id"].encode() and r.topic == TOPIC_COMMENTED]
        assert len({r.partition for r in mine}) == 1
        bodies = [json.loads(r.value)["comment"]["body"] for r in sorted(mine, key=lambda r: r.offset)]
        assert bodies == [str(seq) for seq in range(1, 10)]
    async with db.unit_of_work() as session:
        left = await session.scalars(select(OutboxEvent.id).where(
            OutboxEvent.id.in_([uuid.UUID(i) for i in ids]), OutboxEvent.published_at.is_(None)))
        assert list(left) == []
