"""The outbound half of the `worker` role: relay, mailer (a Kafka consumer group or in-process)."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from typing import TYPE_CHECKING

from core.config import Settings
from core.db import Database
from core.metrics import Metrics
from outbound.mailer import Mailer
from outbound.relay import InProcessPublisher, OutboxRelay, Publisher
from outbound.transport import Transport, transport_from_settings

if TYPE_CHECKING:
    from outbound.kafka import KafkaConsumerLoop

log = logging.getLogger(__name__)

MAILER_GROUP = "helpdesk-mailer"
Handler = Callable[[list[dict[str, Any]]], Awaitable[None]]


class Outbound:
    def __init__(
        self, settings: Settings, db: Database, metrics: Metrics, *, transport: Transport | None = None,
        defer_while: Callable[[], bool] = lambda: False, in_process: Sequence[Handler] = (),
    ) -> None:
        """`in_process`: consumers called before the mailer when there is no Kafka (the search
        indexer's queueing: cheap, and it must not wait behind the mail being sent)."""
        self.settings = settings
        self.mailer = Mailer(db, settings, transport or transport_from_settings(settings), metrics)
        self.consumer: KafkaConsumerLoop | None = None
        publisher: Publisher
        if settings.kafka_bootstrap:
            from outbound import kafka  # imported only when configured

            options = dict(
                partitions=settings.kafka_partitions, replication=settings.kafka_replication_factor,
                timeout=settings.kafka_timeout_seconds,
            )
            publisher = kafka.KafkaPublisher(settings.kafka_bootstrap, **options)
            self.consumer = kafka.KafkaConsumerLoop(
                settings.kafka_bootstrap, group_id=MAILER_GROUP, handler=self.mailer.handle_batch, **options,
            )
        else:
            publisher = InProcessPublisher([*in_process, self.mailer.handle_batch])
        self.relay = OutboxRelay(
            db, publisher, metrics, batch_size=settings.outbox_batch_size,
            poll_seconds=settings.outbox_poll_seconds, defer_while=defer_while,
        )

    async def start(self) -> None:
        await self.mailer.start()
        if self.consumer is not None:
            await self.consumer.start()
        await self.relay.start()
        where = f"Kafka at {self.settings.kafka_bootstrap}" if self.consumer else "in-process consumers"
        log.info("outbox relay publishing to %s; mail via %s", where, self.settings.smtp_relay or "Maildir")

    async def stop(self) -> None:
        await self.relay.stop()
        if self.consumer is not None:
            await self.consumer.stop()
        await self.mailer.stop()
