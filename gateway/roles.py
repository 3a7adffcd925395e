"""Which parts run in this process, and their start and orderly stop."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from aiohttp import web

from core.attachments import AttachmentStore, open_store
from core.bootstrap import bootstrap
from core.config import Settings
from core.db import Database
from core.events import SEARCH_TOPICS
from core.ingest.host_arrivals import FILE_NAME as ARRIVALS_FILE
from core.ingest.host_arrivals import HostArrivals, open_slot
from core.ingest.intake import Intake
from core.ingest.notify import InboundListener
from core.ingest.pipeline import Pipeline
from core.ingest.runner import IngestRunner
from core.jobs.scheduler import Jobs
from core.metrics import Metrics
from gateway.http.app import create_app
from gateway.smtp import SmtpServer
from outbound.service import Outbound
from search.indexer import SEARCH_GROUP, SearchIndexer
from search.service import backend_from_settings

if TYPE_CHECKING:
    from outbound.kafka import KafkaConsumerLoop

log = logging.getLogger(__name__)


@dataclass
class Gateway:
    """The running roles of one process, on one event loop, sharing one database pool."""

    settings: Settings
    db: Database
    metrics: Metrics = field(default_factory=Metrics)
    admin_token: str | None = None
    reuse_port: bool = False  # one of several processes sharing the ports (serve --processes)
    host_slot: int | None = None  # which of them: its slot in the host's arrivals file
    smtp_port: int | None = None
    http_port: int | None = None
    runner: IngestRunner | None = None
    outbound: Outbound | None = None
    jobs: Jobs | None = None
    store: AttachmentStore | None = None
    indexer: SearchIndexer | None = None
    _search_consumer: KafkaConsumerLoop | None = None
    _intake: Intake | None = None
    _host: HostArrivals | None = None
    _listener: InboundListener | None = None
    _smtp: SmtpServer | None = None
    _http: web.AppRunner | None = None

    async def start(self) -> None:
        settings = self.settings
        self.admin_token = await bootstrap(self.db, settings)
        self.store = open_store(settings, self.db)
        await self.store.start()
        if "smtp" in settings.roles or "api" in settings.roles:
            if self.host_slot is not None:
                self._host = open_slot(settings.data_dir / ARRIVALS_FILE, self.host_slot)
            self._intake = Intake(self.db, host=self._host)
            await self._intake.start()
        if "worker" in settings.roles:
            intake = self._intake
            self.runner = IngestRunner(
                self.db, Pipeline.from_settings(settings, self.store), self.metrics, workers=settings.ingest_workers,
                max_attempts=settings.ingest_max_attempts, poll_seconds=settings.ingest_poll_seconds,
                batch=settings.ingest_batch, linger=settings.ingest_linger_seconds,
                # a burst of senders waiting for their 250 goes before ticket creation
                defer_while=self._mail_burst,
            )
            if intake is not None:
                intake.on_commit = self.runner.wake
            else:  # mail is accepted by another process: its commits wake us
                self._listener = InboundListener(self.db.url, self.runner.wake)
                await self._listener.start()
            await self.runner.start()
            runner = self.runner
            self.indexer = SearchIndexer(self.db, backend_from_settings(settings), self.metrics)
            await self.indexer.start()
            # tickets before notifications: mail accepted must become tickets first
            self.outbound = Outbound(
                settings, self.db, self.metrics,
                defer_while=lambda: runner.behind or self._mail_burst(),
                in_process=[self.indexer.handle_batch],
            )
            await self.outbound.start()
            if settings.kafka_bootstrap:  # the indexer is a consumer group of its own
                from outbound import kafka

                self._search_consumer = kafka.KafkaConsumerLoop(
                    settings.kafka_bootstrap, group_id=SEARCH_GROUP, handler=self.indexer.handle_batch,
                    topics=SEARCH_TOPICS, partitions=settings.kafka_partitions,
                    replication=settings.kafka_replication_factor, timeout=settings.kafka_timeout_seconds,
                )
                await self._search_consumer.start()
        if "scheduler" in settings.roles:
            self.jobs = Jobs(self.db, settings, self.metrics)
            await self.jobs.start()
        if "smtp" in settings.roles:
            assert self._intake is not None
            self._smtp = SmtpServer(settings, self._intake, self.metrics)
            self.smtp_port = await self._smtp.start(
                settings.smtp_host, settings.smtp_port, reuse_port=self.reuse_port)
        if "api" in settings.roles:
            assert self._intake is not None
            app = create_app(settings, self.db, self.metrics, intake=self._intake, store=self.store)
            self._http = web.AppRunner(app, access_log=None)
            await self._http.setup()
            site = web.TCPSite(
                self._http, settings.http_host, settings.http_port, reuse_port=self.reuse_port or None)
            await site.start()
            self.http_port = self._http.addresses[0][1]

    def _mail_burst(self) -> bool:
        """Mail arrives faster than it can become tickets: the backlog grows whatever we do,
        so senders waiting for their 250 go first and tickets catch up afterwards. Whether or
        not a sender is waiting at this very moment: in a burst the intake's queue empties at
        each group commit, and a batch of tickets started then holds up every SMTP session of
        this process (asking for a waiting sender as well took `--processes 2` acceptance
        from 57-64% to 34-45% of a bare server, bench/ingest.py)."""
        if self._intake is None or self.runner is None or not self.runner.capacity:
            return False  # no measured capacity yet (no full batch so far): no reason to wait
        # the whole host's mail against its ticket creation, each process making tickets
        # about as fast as this one: the senders of a busy sibling need the same cores
        return self._intake.host_arrival_rate() > self.runner.capacity * self._intake.processes

    async def stop(self) -> None:
        """Drain: no new mail, finish SMTP transactions, store what was accepted, then stop."""
        if self._smtp is not None:
            await self._smtp.stop(self.settings.smtp_drain_seconds)
        if self._http is not None:
            await self._http.cleanup()
        if self._intake is not None:
            await self._intake.stop()
        if self._host is not None:
            self._host.close()
        if self._listener is not None:
            await self._listener.stop()
        if self.runner is not None:
            await self.runner.stop()
        if self._search_consumer is not None:
            await self._search_consumer.stop()
        if self.outbound is not None:
            await self.outbound.stop()
        if self.indexer is not None:
            await self.indexer.stop()
        if self.jobs is not None:
            await self.jobs.stop()
        if self.store is not None:
            await self.store.close()
        await self.db.dispose()
