"""Kafka plumbing for the outbox: topics, the idempotent producer, the consumer-group loop.

aiokafka 0.14 speaks only InitProducerId v0, which has no producer id/epoch fields; brokers
that read those fields unconditionally (Tansu, the broker the tests run) refuse it. We add the
flexible v3 of that one request (Kafka >= 2.5 and Tansu accept it); older brokers still get v0.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import aiokafka.producer.sender as _sender
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.protocol.api import Request, RequestStruct, Response
from aiokafka.protocol.transaction import InitProducerIdRequest_v0
from aiokafka.protocol.types import (
    CompactString,
    Int16,
    Int32,
    Int64,
    Schema,
    TaggedFields,
)

from core.events import TOPICS

log = logging.getLogger(__name__)

TOPIC_EXISTS = 36


class InitProducerIdResponse_v3(Response):
    API_KEY = 22
    API_VERSION = 3
    SCHEMA = Schema(
        ("throttle_time_ms", Int32), ("error_code", Int16), ("producer_id", Int64),
        ("producer_epoch", Int16), ("tags", TaggedFields),
    )


class InitProducerIdRequest_v3(RequestStruct):
    FLEXIBLE_VERSION = True
    API_KEY = 22
    API_VERSION = 3
    RESPONSE_TYPE = InitProducerIdResponse_v3
    SCHEMA = Schema(
        ("transactional_id", CompactString("utf-8")), ("transaction_timeout_ms", Int32),
        ("producer_id", Int64), ("producer_epoch", Int16), ("tags", TaggedFields),
    )


class InitProducerIdRequest(Request[InitProducerIdRequest_v0 | InitProducerIdRequest_v3]):
    """aiokafka's request plus v3, chosen when the broker offers it (-1/-1: a new producer)."""

    API_KEY = 22

    def __init__(self, transactional_id: str | None, transaction_timeout_ms: int) -> None:
        self._transactional_id = transactional_id
        self._timeout_ms = transaction_timeout_ms

    def build(self, request_struct_class: type[Any]) -> Any:
        if request_struct_class.API_VERSION >= 3:
            return request_struct_class(self._transactional_id, self._timeout_ms, -1, -1, {})
        return request_struct_class(self._transactional_id, self._timeout_ms)


_sender.InitProducerIdRequest = InitProducerIdRequest  # type: ignore[attr-defined]


async def ensure_topics(
    bootstrap: str, *, partitions: int, replication: int, timeout: float,
    topics: Sequence[str] = TOPICS,
) -> None:
    """Creates the topics that are missing; an existing topic is left as it is."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=int(timeout * 1000))
    await asyncio.wait_for(admin.start(), timeout)
    try:
        existing = set(await asyncio.wait_for(admin.list_topics(), timeout))
        missing = [t for t in topics if t not in existing]
        if not missing:
            return
        response = await asyncio.wait_for(
            admin.create_topics(
                [NewTopic(t, num_partitions=partitions, replication_factor=replication) for t in missing]
            ),
            timeout,
        )
        for topic, code, message in response.topic_errors:
            if code not in (0, TOPIC_EXISTS):
                raise RuntimeError(f"cannot create topic {topic}: error {code} {message}")
        log.info("created Kafka topics %s", ", ".join(missing))
    finally:
        await admin.close()


class KafkaPublisher:
    """Idempotent producer, acks=all, key = ticket id. Rebuilt after any failure."""

    def __init__(self, bootstrap: str, *, partitions: int, replication: int, timeout: float) -> None:
        self.bootstrap = bootstrap
        self.partitions = partitions
        self.replication = replication
        self.timeout = timeout
        self._producer: AIOKafkaProducer | None = None

    async def _connect(self) -> AIOKafkaProducer:
        if self._producer is None:
            await ensure_topics(
                self.bootstrap, partitions=self.partitions, replication=self.replication,
                timeout=self.timeout,
            )
            producer = AIOKafkaProducer(
                bootstrap_servers=self.bootstrap, enable_idempotence=True, acks="all",
                request_timeout_ms=int(self.timeout * 1000), linger_ms=2,
            )
            try:
                await asyncio.wait_for(producer.start(), self.timeout)
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer

    async def publish(self, events: Sequence[tuple[str, str, dict[str, Any]]]) -> None:
        """(topic, key, payload) in order; returns once the broker acknowledged every one."""
        try:
            producer = await self._connect()
            futures = [
                await producer.send(topic, key=key.encode(), value=json.dumps(payload).encode())
                for topic, key, payload in events
            ]
            await asyncio.wait_for(asyncio.gather(*futures), self.timeout)
        except BaseException:
            await self.close()  # a restarted broker forgets producer ids: start afresh
            raise

    async def close(self) -> None:
        producer, self._producer = self._producer, None
        if producer is not None:
            try:
                await asyncio.wait_for(producer.stop(), self.timeout)
            except Exception:
                log.debug("closing the Kafka producer failed", exc_info=True)


Handler = Callable[[list[dict[str, Any]]], Awaitable[None]]


class KafkaConsumerLoop:
    """One member of a consumer group: fetch a batch, hand it on, commit only after it is handled.

    A handler failure rewinds to the committed offsets and reads the batch again after a
    backoff; a broker failure drops the consumer without committing and starts a new one. Either
    way uncommitted events are delivered again (handlers are idempotent by event_id)."""

    def __init__(
        self, bootstrap: str, *, group_id: str, handler: Handler, partitions: int,
        replication: int, timeout: float, topics: Sequence[str] = TOPICS, max_backoff: float = 5.0,
    ) -> None:
        self.bootstrap = bootstrap
        self.group_id = group_id
        self.handler = handler
        self.topics = list(topics)
        self.partitions = partitions
        self.replication = replication
        self.timeout = timeout
        self.max_backoff = max_backoff
        self._stopping = False
        self._handler_backoff = 0.2
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self, grace: float = 10.0) -> None:
        """Finishes the batch in hand if it can within `grace` seconds; what is cut short is
        not committed, so it comes again (to this group's next member)."""
        self._stopping = True
        if self._task is not None:
            done, _ = await asyncio.wait([self._task], timeout=grace)
            if not done:
                self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        backoff = 0.2
        while not self._stopping:
            consumer: AIOKafkaConsumer | None = None
            try:
                await ensure_topics(
                    self.bootstrap, partitions=self.partitions, replication=self.replication,
                    timeout=self.timeout,
                )
                consumer = AIOKafkaConsumer(
                    *self.topics, bootstrap_servers=self.bootstrap, group_id=self.group_id,
                    enable_auto_commit=False, auto_offset_reset="earliest",
                    fetch_max_wait_ms=100, request_timeout_ms=int(self.timeout * 1000) + 30_000,
                    # a broker that came back without our topics (one that keeps them in memory)
                    # gets them again from the relay; the subscription sees them at the next
                    # metadata refresh, so keep that short
                    metadata_max_age_ms=5_000,
                    # a killed member is noticed within seconds; aiokafka rejoins in the
                    # background, so a short rebalance timeout does not cut a batch short
                    session_timeout_ms=6_000, heartbeat_interval_ms=1_000, rebalance_timeout_ms=3_000,
                )
                await asyncio.wait_for(consumer.start(), self.timeout + 60)  # includes joining the group
                backoff = 0.2
                await self._consume(consumer)
            except Exception as exc:
                log.warning("Kafka consumer %s: %r; reconnecting in %.1fs", self.group_id, exc, backoff)
                await asyncio.sleep(backoff)
                backoff = min(self.max_backoff, backoff * 2)
            finally:
                if consumer is not None:
                    await _quietly(consumer.stop())

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        while not self._stopping:
            batch = await consumer.getmany(timeout_ms=200, max_records=500)
            if not batch:
                continue
            events = []
            for records in batch.values():
                for record in records:
                    try:
                        events.append(json.loads(record.value))
                    except (TypeError, ValueError):
                        log.error("skipping an undecodable record at %s:%s", record.topic, record.offset)
            try:
                await self.handler(events)
            except Exception as exc:  # ours (database trouble): read the batch again later
                log.warning("Kafka consumer %s: handling failed (%r); will read the batch again", self.group_id, exc)
                await self._rewind(consumer)
                await asyncio.sleep(self._handler_backoff)
                self._handler_backoff = min(self.max_backoff, self._handler_backoff * 2)
                continue
            self._handler_backoff = 0.2
            await consumer.commit()

    @staticmethod
    async def _rewind(consumer: AIOKafkaConsumer) -> None:
        """Back to the last committed offsets: nothing after them counts as handled."""
        for tp in consumer.assignment():
            committed = await consumer.committed(tp)
            if committed is None:
                await consumer.seek_to_beginning(tp)
            else:
                consumer.seek(tp, committed)


async def _quietly(awaitable: Awaitable[Any]) -> None:
    try:
        await asyncio.wait_for(awaitable, 10)
    except Exception:
        log.debug("Kafka client stop failed", exc_info=True)
