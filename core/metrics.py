"""Prometheus metrics, in a registry owned by the running gateway (no global state)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector


class SlaTotals(Collector):
    """`helpdesk_sla_targets_total{metric, outcome=achieved|breached}` and
    `helpdesk_sla_targets_active{metric}`, as `core.sla.targets.compliance` counted them last."""

    def __init__(self) -> None:
        self.figures: dict[str, dict[str, Any]] = {}

    def collect(self) -> Iterator[Metric]:
        totals = CounterMetricFamily(
            "helpdesk_sla_targets", "SLA targets achieved or breached, by metric (as GET /sla/compliance, all time)",
            labels=["metric", "outcome"],
        )
        active = GaugeMetricFamily(
            "helpdesk_sla_targets_active", "SLA targets still running, by metric", labels=["metric"],
        )
        for metric, figures in sorted(self.figures.items()):
            for outcome in ("achieved", "breached"):
                totals.add_metric([metric, outcome], figures[outcome])
            active.add_metric([metric], figures["active"])
        yield totals
        yield active


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.smtp_accepted = Counter(
            "helpdesk_smtp_messages_accepted", "Messages answered 250 after commit",
            registry=self.registry,
        )
        self.smtp_rejected = Counter(
            "helpdesk_smtp_messages_rejected", "Messages or recipients refused at SMTP time",
            ["reason"], registry=self.registry,
        )
        self.quarantined = Counter(
            "helpdesk_ingest_quarantined", "Messages quarantined, by reason kind",
            ["kind"], registry=self.registry,
        )
        self.ingested = Counter(
            "helpdesk_ingest_messages", "Inbound messages processed, by outcome",
            ["outcome"], registry=self.registry,
        )
        self.ingest_errors = Counter(
            "helpdesk_ingest_errors", "Ingest attempts that failed on our side and will be retried",
            registry=self.registry,
        )
        self.ingest_latency = Histogram(
            "helpdesk_ingest_latency_seconds", "From SMTP acceptance to ticket or quarantine",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=self.registry,
        )
        self.smtp_sessions = Gauge(
            "helpdesk_smtp_sessions", "Open SMTP connections", registry=self.registry
        )
        # outbound/: the outbox relay and the mailer
        self.outbox_published = Counter(
            "helpdesk_outbox_published", "Outbox events published (to Kafka or in-process consumers)",
            registry=self.registry,
        )
        self.outbox_errors = Counter(
            "helpdesk_outbox_publish_errors", "Outbox publish attempts that failed and will be retried",
            registry=self.registry,
        )
        self.mail_deliveries = Counter(
            "helpdesk_mail_deliveries", "Notification deliveries by outcome (sent, failed, retry)",
            ["outcome"], registry=self.registry,
        )
        self.mail_suppressed = Counter(
            "helpdesk_mail_suppressed", "Notifications not sent on purpose, by reason",
            ["reason"], registry=self.registry,
        )
        self.job_items = Counter(
            "helpdesk_job_items", "Items handled by scheduled jobs (tickets closed, events pruned)",
            ["job"], registry=self.registry,
        )
        self.job_errors = Counter(
            "helpdesk_job_errors", "Scheduled job runs that failed (retried at the next interval)",
            ["job"], registry=self.registry,
        )
        # read from the database at each scrape (gateway/http/system.py): the same figures as
        # GET /sla/compliance over all time, whichever process met or marked the targets
        self.sla_targets = SlaTotals()
        self.registry.register(self.sla_targets)

        # search/: the indexer and the queries
        self.search_indexed = Counter(
            "helpdesk_search_indexed", "Ticket documents written to the search index", registry=self.registry,
        )
        self.search_index_errors = Counter(
            "helpdesk_search_index_errors", "Indexing batches that failed and will be retried",
            registry=self.registry,
        )
        self.search_index_latency = Histogram(
            "helpdesk_search_index_latency_seconds", "From a ticket's change to its searchable document",
            buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300), registry=self.registry,
        )
        self.search_lag = Gauge(
            "helpdesk_search_lag_seconds",
            "Age of the oldest change not yet searchable (0: the index is current)", registry=self.registry,
        )
        self.search_queries = Counter(
            "helpdesk_search_queries", "Search queries answered, by backend and result type",
            ["backend", "type"], registry=self.registry,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
