"""The authentication verdict of one inbound message, as the configured mode decides it."""

from __future__ import annotations

import asyncio

from core.config import Settings
from core.ingest.models import InboundMessage
from core.mail.authentication import (
    CHECK,
    TRUST_MTA,
    UNVERIFIED,
    Verdict,
    check,
    header_values,
    make_resolver,
    trusted_verdict,
)


class Verifier:
    def __init__(
        self, mode: str = "off", *, trusted: frozenset[str] = frozenset(), resolver: str | None = None,
        timeout: float = 3.0, authserv_id: str = "helpdesk",
    ) -> None:
        self.mode = mode
        self.trusted = trusted
        self.timeout = timeout
        self.authserv_id = authserv_id
        self.resolver = make_resolver(resolver, timeout) if mode == CHECK else None  # one cache per process

    @classmethod
    def from_settings(cls, settings: Settings) -> Verifier:
        return cls(
            settings.sender_verification, trusted=settings.trusted_authserv_id_set,
            resolver=settings.dns_resolver, timeout=settings.dns_timeout_seconds,
            authserv_id=settings.smtp_hostname,
        )

    async def verdict(self, inbound: InboundMessage) -> Verdict:
        if self.mode == TRUST_MTA:
            return trusted_verdict(header_values(inbound.raw), self.trusted)
        if self.mode == CHECK:
            smtp = inbound.source == "smtp"
            # DNS lookups block: a thread each, so a batch's lookups overlap
            return await asyncio.to_thread(
                check, inbound.raw, ip=inbound.peer if smtp else None, mail_from=inbound.mail_from,
                helo=inbound.helo, resolver=self.resolver, timeout=self.timeout, authserv_id=self.authserv_id,
            )
        return UNVERIFIED
