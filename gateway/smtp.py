"""SMTP ingress: cheap checks at RCPT, durable store at DATA, 250 only after commit."""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from core.config import Settings
from core.ingest.intake import Intake, IntakeUnavailable, Submission
from core.mail.addresses import support_mailbox
from core.metrics import Metrics

log = logging.getLogger(__name__)

# `<dot-atom@host.name> params`: what nearly every MTA sends. aiosmtpd parses each MAIL and
# RCPT argument with the email package's RFC 5322 parser (and defines a class per call),
# a fifth of the SMTP front's CPU; anything else still goes to that parser.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_PATH = re.compile(
    rf"\s*<({_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
    rf"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)>(?:[ \t]+(.*))?\Z",
    re.DOTALL,
)

TOO_BIG = "552 5.3.4 Message size exceeds the limit of this server"
TRY_LATER = "451 4.3.0 Temporary failure storing the message, please try again later"


class IngressHandler:
    def __init__(self, settings: Settings, intake: Intake, metrics: Metrics) -> None:
        self.settings = settings
        self.intake = intake
        self.metrics = metrics

    async def handle_EHLO(
        self, server: SMTP, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        # aiosmtpd reads commands from a buffered stream, so pipelined commands are safe
        return [*responses[:-1], "250-PIPELINING", "250-ENHANCEDSTATUSCODES", responses[-1]]

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        if len(envelope.rcpt_tos) >= self.settings.max_recipients:
            self.metrics.smtp_rejected.labels("too_many_recipients").inc()
            return "452 4.5.3 Too many recipients"
        if support_mailbox(address, self.settings.support_mailboxes) is None:
            self.metrics.smtp_rejected.labels("unknown_recipient").inc()
            return f"550 5.1.1 <{address}>: no such support address here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        submission = Submission(
            mail_from=envelope.mail_from or "", rcpt_tos=list(envelope.rcpt_tos), raw=raw,
            peer=peer, helo=session.host_name,
        )
        try:
            inbound_id = await self.intake.submit(submission)
        except IntakeUnavailable:
            self.metrics.smtp_rejected.labels("storage_unavailable").inc()
            return TRY_LATER
        self.metrics.smtp_accepted.inc()
        reply = f"250 2.0.0 OK queued as {inbound_id}"
        if isinstance(server, LMTP):  # one reply per recipient; the one stored copy serves all
            return "\r\n".join([reply] * len(envelope.rcpt_tos))
        return reply


class IngressSMTP(SMTP):
    """aiosmtpd's server with RFC 3463 codes for size refusals and a connection count."""

    def __init__(self, *args: Any, sessions: set[Any], metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sessions = sessions
        self._metrics = metrics

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._sessions.add(self)
        self._metrics.smtp_sessions.set(len(self._sessions))
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        self._sessions.discard(self)
        self._metrics.smtp_sessions.set(len(self._sessions))
        super().connection_lost(error)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        plain = _PLAIN_PATH.match(arg)
        if plain is None:
            return super()._getaddr(arg)
        address = plain.group(1)
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, plain.group(2) or ""

    async def push(self, status: Any) -> None:
        text = status.decode() if isinstance(status, bytes) else status
        if text.startswith("5"):
            if text.startswith("552 Error"):
                self._metrics.smtp_rejected.labels("too_large").inc()
                text = TOO_BIG
            elif text.startswith("500 Line too long"):
                text = "500 5.5.2 Line too long (RFC 5321 section 4.5.3.1.6 allows 1000 octets)"
        await super().push(text)

    @property
    def idle(self) -> bool:
        return self.envelope is None or not (self.envelope.mail_from or self.envelope.rcpt_tos)


class IngressLMTP(IngressSMTP, LMTP):
    """The same ingress spoken as LMTP (RFC 2033), for an MTA that hands mail over locally."""


class _Refuse(asyncio.Protocol):
    """Over the connection limit: say so and hang up, without starting a session."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        transport.write(b"421 4.7.0 Too many connections, try again later\r\n")
        transport.close()


def tls_context(settings: Settings) -> ssl.SSLContext | None:
    """STARTTLS is offered when a certificate is configured."""
    if settings.smtp_tls_cert is None:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(settings.smtp_tls_cert, settings.smtp_tls_key)
    return context


class SmtpServer:
    def __init__(self, settings: Settings, intake: Intake, metrics: Metrics) -> None:
        self.settings = settings
        self.handler = IngressHandler(settings, intake, metrics)
        self.metrics = metrics
        self.sessions: set[IngressSMTP] = set()
        self.tls_context = tls_context(settings)
        self._server: asyncio.base_events.Server | None = None

    def _protocol(self) -> asyncio.Protocol:
        if len(self.sessions) >= self.settings.max_connections:
            self.metrics.smtp_rejected.labels("too_many_connections").inc()
            return _Refuse()
        protocol = IngressLMTP if self.settings.lmtp else IngressSMTP
        return protocol(
            self.handler,
            sessions=self.sessions,
            metrics=self.metrics,
            data_size_limit=self.settings.max_message_bytes,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=self.settings.smtp_hostname,
            ident="helpdesk-gateway ESMTP",
            timeout=300,
            tls_context=self.tls_context,
        )

    async def start(self, host: str, port: int, *, reuse_port: bool = False) -> int:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(self._protocol, host, port, reuse_port=reuse_port or None)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self, drain_seconds: float) -> None:
        """Stop listening, let open transactions finish, then close what is left."""
        if self._server is None:
            return
        self._server.close()
        deadline = asyncio.get_running_loop().time() + drain_seconds
        while any(not s.idle for s in self.sessions) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        for session in list(self.sessions):
            if session.transport is not None:
                session.transport.close()
        await self._server.wait_closed()
        self._server = None
