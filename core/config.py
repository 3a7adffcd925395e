"""The one settings object every role reads (env `HELPDESK_*`, optional `helpdesk.toml`)."""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ROLES = ("smtp", "api", "worker", "scheduler")


def parse_support_addresses(raw: str) -> dict[str, str]:
    """`a@x=Group A, b@x=Group B` -> {"a@x": "Group A", ...}; addresses lower-cased."""
    result: dict[str, str] = {}
    for item in raw.split(","):
        item = item.strip()
        if not item:
            continue
        address, sep, group = item.partition("=")
        address = address.strip().lower()
        if "@" not in address or address.startswith("@") or address.endswith("@"):
            raise ValueError(f"not an email address: {address!r}")
        result[address] = (group.strip() if sep else "") or "Support"
    if not result:
        raise ValueError("at least one support address is required")
    return result


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="HELPDESK_", toml_file="helpdesk.toml", extra="ignore"
    )

    data_dir: Path = Path("./var")
    database_url: str | None = None
    support_addresses: str = "support@example.com=Support"

    smtp_host: str = "127.0.0.1"
    smtp_port: int = 2525
    smtp_hostname: str = "helpdesk.localhost"
    max_message_bytes: int = 26_214_400
    max_recipients: int = Field(default=100, ge=1)  # RFC 5321 §4.5.3.1.8: at least 100
    max_connections: int = Field(default=200, ge=1)
    smtp_drain_seconds: float = 10.0
    smtp_tls_cert: Path | None = None  # PEM; STARTTLS is offered when set
    smtp_tls_key: Path | None = None  # PEM; may be omitted when the cert file holds the key
    lmtp: bool = False  # speak LMTP instead of SMTP on the ingress port

    http_host: str = "127.0.0.1"
    http_port: int = 8080
    public_url: str | None = None
    # verified tokens are remembered this long per process (a revocation reaches the others then)
    api_auth_cache_seconds: float = Field(default=5.0, ge=0)
    # per token and process; 0 turns the limit off
    api_rate_per_minute: int = Field(default=6000, ge=0)
    api_rate_burst: int = Field(default=300, ge=1)

    roles: Annotated[tuple[str, ...], NoDecode] = ROLES
    ingest_workers: int = Field(default=1, ge=1, le=64)
    # messages claimed per ingest transaction when mail is waiting: each batch pays a dozen
    # lookups and a commit once (bench/ingest_path.py: 8 -> 32 took ~40% off the CPU a message)
    ingest_batch: int = Field(default=32, ge=1, le=500)
    # how long a runner without a backlog waits for more mail before it claims a batch
    ingest_linger_seconds: float = Field(default=0.1, ge=0, le=5)
    ingest_max_attempts: int = Field(default=5, ge=1)
    ingest_poll_seconds: float = 1.0
    db_pool_size: int = Field(default=20, ge=1)
    max_followers: int = Field(default=10, ge=0)
    # a ticket taking more mail than this per hour is being flooded (or looping): quarantine
    ticket_inbound_per_hour: int = Field(default=30, ge=1)

    kafka_bootstrap: str | None = None
    meili_url: str | None = None
    meili_key: str | None = None
    meili_index_prefix: str = "helpdesk_"  # several desks (or test runs) may share one server
    # how deep cursor paging reaches through one Meilisearch query (PostgreSQL search: no limit)
    meili_max_total_hits: int = Field(default=100_000, ge=1000)
    smtp_relay: str | None = None

    # outgoing mail (outbound/): relay options, retries, limits
    smtp_relay_starttls: bool = False
    smtp_relay_username: str | None = None
    smtp_relay_password: str | None = None
    smtp_relay_timeout: float = Field(default=30.0, gt=0)
    mail_bounce_address: str | None = None  # envelope sender base; +bounces-<token> is added (VERP)
    mail_concurrency: int = Field(default=8, ge=1, le=64)
    mail_retry_seconds: float = Field(default=30.0, gt=0)  # first retry; doubles per attempt
    mail_max_attempts: int = Field(default=8, ge=1)
    auto_replies_per_hour: int = Field(default=10, ge=0)  # automatic mails to one address
    outbox_poll_seconds: float = Field(default=0.2, gt=0)
    outbox_batch_size: int = Field(default=200, ge=1)
    kafka_partitions: int = Field(default=6, ge=1)
    kafka_replication_factor: int = Field(default=1, ge=1)
    kafka_timeout_seconds: float = Field(default=10.0, gt=0)

    # scheduled jobs (the scheduler role)
    jobs_interval_seconds: float = Field(default=60.0, gt=0)
    auto_close_after_hours: float = Field(default=96.0, gt=0)  # solved this long: closed
    sla_warning_minutes: float = Field(default=30.0, ge=0)  # warn this long before a breach
    outbox_retention_hours: float = Field(default=168.0, gt=0)  # published events kept this long

    # mail safety: bounds on parsing one message (over any: quarantined at once), loops, edges
    parse_max_header_bytes: int = Field(default=262_144, ge=1024)
    parse_max_encoded_words: int = Field(default=1000, ge=1)
    parse_max_mime_depth: int = Field(default=50, ge=1, le=500)
    parse_max_mime_parts: int = Field(default=1000, ge=1)
    parse_max_attachments: int = Field(default=100, ge=0)
    parse_max_references: int = Field(default=100, ge=1)
    # larger messages are parsed in a process pool with this time (and memory) limit each
    parse_inline_bytes: int = Field(default=262_144, ge=0)
    parse_timeout_seconds: float = Field(default=20.0, gt=0)
    parse_processes: int = Field(default=2, ge=1, le=64)
    parse_memory_mb: int = Field(default=2048, ge=256)
    max_received_headers: int = Field(default=100, ge=2)  # RFC 5321 §6.3: a routing loop
    smtp_max_connections_per_ip: int = Field(default=50, ge=1)
    smtp_max_unknown_recipients: int = Field(default=20, ge=1)  # per session, then 421 and hang up
    smtp_idle_seconds: float = Field(default=300.0, gt=0)
    smtp_stress_idle_seconds: float = Field(default=10.0, gt=0)  # above 80% of max_connections
    # acknowledgements of new mail, per mailer process: all senders, and per sending host
    ack_burst: int = Field(default=60, ge=0)
    ack_per_hour: int = Field(default=600, ge=0)
    ack_per_host_burst: int = Field(default=20, ge=0)
    ack_per_host_per_hour: int = Field(default=120, ge=0)
    # the API edge: invalid bearer tokens per client address, active tokens per agent
    api_auth_failures_per_minute: int = Field(default=30, ge=0)
    api_auth_failures_burst: int = Field(default=10, ge=1)
    max_tokens_per_agent: int = Field(default=20, ge=1)
    # who sent this: off | trust-mta (Authentication-Results of these authserv-ids) | check (DMARC here)
    sender_verification: str = "check"
    trusted_authserv_ids: str = ""  # comma-separated
    dns_resolver: str | None = None  # host[:port] for verification lookups; default the system's
    dns_timeout_seconds: float = Field(default=3.0, gt=0)
    # notification mails (issue 13): the agents' page for one ticket, `{number}` filled in
    agent_ticket_url: str | None = None
    # scale-out: shared attachment content, Redis for shared limits and caches, processes per host
    attachment_store: Literal["fs", "postgres", "s3"] = "fs"
    s3_bucket: str | None = None
    s3_prefix: str = "attachments/"
    s3_endpoint_url: str | None = None  # e.g. http://minio:9000; AWS when unset
    s3_region: str | None = None
    s3_access_key_id: str | None = None  # else the usual AWS credential chain
    s3_secret_access_key: str | None = None
    redis_url: str | None = None  # redis://host:6379/0: one rate limit and cache invalidation for all
    processes: str = "1"  # `serve` processes on this host sharing the ports; `auto` = cores
    # `serve`'s event loop. uvloop cut an SMTP front's CPU per message by about a fifth, but the
    # HTTP API served 11-14% fewer requests on it (bench/api.py, 2026-11-30): `auto` takes
    # uvloop for processes without the api role, asyncio's own loop for those with it
    event_loop: Literal["auto", "uvloop", "asyncio"] = "auto"
    # satisfaction surveys (issue 10)
    satisfaction_delay_hours: float = Field(default=24.0, ge=0)  # solved this long: the survey goes out

    @field_validator("support_addresses")
    @classmethod
    def _check_addresses(cls, value: str) -> str:
        parse_support_addresses(value)
        return value

    @field_validator("sender_verification")
    @classmethod
    def _check_verification(cls, value: str) -> str:
        if value not in ("off", "trust-mta", "check"):
            raise ValueError("expected off, trust-mta or check")
        return value

    @cached_property
    def trusted_authserv_id_set(self) -> frozenset[str]:
        return frozenset(i.strip().lower() for i in self.trusted_authserv_ids.split(",") if i.strip())

    @field_validator("smtp_relay")
    @classmethod
    def _check_relay(cls, value: str | None) -> str | None:
        if value:
            host, sep, port = value.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"expected host:port, got {value!r}")
        return value

    @field_validator("processes")
    @classmethod
    def _check_processes(cls, value: str) -> str:
        if value.strip() != "auto" and not (value.strip().isdigit() and 1 <= int(value) <= 256):
            raise ValueError(f"expected a number of processes (1-256) or auto, got {value!r}")
        return value.strip()

    @model_validator(mode="after")
    def _check_store(self) -> Settings:
        if self.attachment_store == "s3" and not self.s3_bucket:
            raise ValueError("HELPDESK_S3_BUCKET is required when HELPDESK_ATTACHMENT_STORE=s3")
        return self

    @property
    def process_count(self) -> int:
        return (os.cpu_count() or 1) if self.processes == "auto" else int(self.processes)

    @field_validator("roles", mode="before")
    @classmethod
    def _split_roles(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = [r.strip() for r in value.split(",") if r.strip()]
        unknown = set(value) - set(ROLES)
        if unknown:
            raise ValueError(f"unknown roles: {', '.join(sorted(unknown))}")
        return tuple(value)

    @cached_property
    def support_mailboxes(self) -> dict[str, str]:
        return parse_support_addresses(self.support_addresses)

    @property
    def attachments_dir(self) -> Path:
        return self.data_dir / "attachments"

    @property
    def base_url(self) -> str:
        return self.public_url or f"http://{self.http_host}:{self.http_port}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))
