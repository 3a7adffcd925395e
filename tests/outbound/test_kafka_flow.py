"""Mail in ▸ outbox ▸ Kafka (Tansu) ▸ mailer group ▸ SMTP sink: broker restarts, consumer crashes."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from core.events import OutboxEvent
from core.metrics import Metrics
from outbound.kafka import KafkaConsumerLoop, KafkaPublisher
from outbound.mailer import Mailer
from outbound.relay import OutboxRelay
from outbound.transport import transport_from_settings
from tests.gateway.test_conversations import deliver, email
from tests.outbound.support import SmtpSink, Tansu, eventually
from tests.support.gateway import Running, make_settings, running_gateway


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}@mail.test"


@pytest.fixture
async def gw(database_url: str, tmp_path: Path, sink: SmtpSink, tansu: Tansu) -> AsyncIterator[Running]:
    settings = make_settings(
        database_url, tmp_path / "data", smtp_relay=sink.relay, kafka_bootstrap=tansu.bootstrap,
        kafka_timeout_seconds=2.0, kafka_partitions=2, outbox_poll_seconds=0.05,
    )
    async with running_gateway(settings) as running:
        yield running


async def test_acknowledgements_flow_through_kafka_and_survive_a_broker_restart(
    gw: Running, sink: SmtpSink, tansu: Tansu
) -> None:
    first = unique("first")
    raw, _ = email(first, "Before", "hello")
    await deliver(gw, raw)
    await sink.wait_for(first)

    tansu.stop()
    later = [unique(f"later{i}") for i in range(3)]
    tickets = []
    for address in later:
        raw, _ = email(address, "While the broker is down", "hello")
        tickets.append(str((await deliver(gw, raw)).ticket_id))

    async def tried() -> bool:  # the relay keeps the rows, counting its attempts
        async with gw.db.unit_of_work() as session:
            rows = list(await session.scalars(select(OutboxEvent).where(OutboxEvent.key.in_(tickets))))
        # each ticket's `created` event and the acknowledgement trigger's notification
        return {r.key for r in rows} == set(tickets) and all(
            r.published_at is None and r.attempts >= 1 and r.last_error for r in rows
        )
    await eventually(tried, what="failed publish attempts recorded")
    assert all(sink.to(a) == [] for a in later)

    tansu.start()  # the same port; an empty in-memory broker
    for address in later:
        await sink.wait_for(address, timeout=30)
    async with gw.db.unit_of_work() as session:
        left = await session.scalar(select(func.count()).select_from(OutboxEvent).where(
            OutboxEvent.key.in_(tickets), OutboxEvent.published_at.is_(None)))
    assert left == 0
    assert [len(sink.to(a)) for a in [first, *later]] == [1, 1, 1, 1]


async def test_a_batch_handled_but_not_committed_is_read_again_and_sends_nothing_twice(
    database_url: str, tmp_path: Path, sink: SmtpSink, tansu: Tansu
) -> None:
    """Handled, mailed, recorded — then the handler fails before the offsets are committed: the
    consumer reads the same events again and must send nothing again. (A consumer killed
    outright is in test_split_roles.)"""
    settings = make_settings(
        database_url, tmp_path / "data", smtp_relay=sink.relay, kafka_bootstrap=tansu.bootstrap,
        roles="smtp", kafka_partitions=2,
    )
    async with running_gateway(settings) as gw:  # ingest only: no worker, no relay
        addresses = [unique(f"crash{i}") for i in range(8)]
        for address in addresses:
            raw, _ = email(address, "Hello", "hi")
            await gw.send(raw)
        # nothing processes the inbound rows in this gateway: run the ingest and the relay here
        from core.ingest.pipeline import Pipeline
        from core.ingest.runner import IngestRunner

        await IngestRunner(gw.db, Pipeline.from_settings(settings), Metrics(), workers=1).drain()
        publisher = KafkaPublisher(tansu.bootstrap, partitions=2, replication=1, timeout=5)
        await OutboxRelay(gw.db, publisher, Metrics()).drain()
        await publisher.close()

        mailer = Mailer(gw.db, settings, transport_from_settings(settings), Metrics())
        batches: list[int] = []

        async def crash_after_handling(events: list[dict[str, Any]]) -> None:
            await mailer.handle_batch(events)
            batches.append(len(events))
            if len(batches) == 1:
                raise RuntimeError("failed before commit")

        loop = KafkaConsumerLoop(tansu.bootstrap, group_id="helpdesk-mailer", handler=crash_after_handling,
                                 partitions=2, replication=1, timeout=5, max_backoff=0.2)
        await loop.start()
        try:
            for address in addresses:
                await sink.wait_for(address)

            async def redelivered() -> bool:  # the first batch came again
                return len(batches) >= 2 and sum(batches[1:]) >= batches[0]
            await eventually(redelivered, what="the uncommitted events delivered again")
        finally:
            await loop.stop()
        assert [len(sink.to(a)) for a in addresses] == [1] * len(addresses)
