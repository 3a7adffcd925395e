"""The one settings object every role reads (env `HELPDESK_*`, optional `helpdesk.toml`)."""

from __future__ import annotations

from functools import cached_property
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, field_validator
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
    max_recipients: int = Field(default=50, ge=1)
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
    ingest_max_attempts: int = Field(default=5, ge=1)
    ingest_poll_seconds: float = 1.0
    db_pool_size: int = Field(default=20, ge=1)
    max_followers: int = Field(default=10, ge=0)
    # a ticket taking more mail than this per hour is being flooded (or looping): quarantine
    ticket_inbound_per_hour: int = Field(default=30, ge=1)

    kafka_bootstrap: str | None = None
    meili_url: str | None = None
    meili_key: str | None = None
    smtp_relay: str | None = None

    # outgoing mail (outbound/): relay options, retries, limits
    smtp_relay_starttls: bool = False
    smtp_relay_username: str | None = None
    smtp_relay_password: str | None = None
    smtp_relay_timeout: float = Field(default=30.0, gt=0)
    mail_bounce_address: str | None = None  # envelope sender; default support+bounces@ of the mailbox
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

    # satisfaction surveys (issue 10)
    satisfaction_delay_hours: float = Field(default=24.0, ge=0)  # solved this long: the survey goes out

    @field_validator("support_addresses")
    @classmethod
    def _check_addresses(cls, value: str) -> str:
        parse_support_addresses(value)
        return value

    @field_validator("smtp_relay")
    @classmethod
    def _check_relay(cls, value: str | None) -> str | None:
        if value:
            host, sep, port = value.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"expected host:port, got {value!r}")
        return value

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
