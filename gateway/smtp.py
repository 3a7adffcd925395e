"""SMTP ingress: cheap checks at RCPT, durable store at DATA, 250 only after commit."""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
from typing import Any

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import MISSING, SMTP, Envelope, Session

from core.config import Settings
from core.ingest.intake import Intake, IntakeUnavailable, Submission
from core.mail.addresses import support_mailbox
from core.mail.authentication import strip_untrusted
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
ROUTING_LOOP = "554 5.4.6 Routing loop detected (too many Received headers)"
TOO_MANY_UNKNOWN = "421 4.7.0 Too many unknown recipients in this session, closing"
# idle timeouts as Postfix's: generous normally, short when the connection slots run low
STRESS_SHARE = 0.8
_RECEIVED = re.compile(rb"^received:", re.I | re.M)


def received_count(raw: bytes) -> int:
    """`Received:` headers in the header block (RFC 5321 §6.3 loop detection)."""
    end = min((i for i in (raw.find(b"\r\n\r\n"), raw.find(b"\n\n")) if i >= 0), default=len(raw))
    return len(_RECEIVED.findall(raw, 0, end))
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
            # a directory harvest: a session may guess only so often
            unknown = getattr(session, "unknown_recipients", 0) + 1
            session.unknown_recipients = unknown  # type: ignore[attr-defined]
            if unknown > self.settings.smtp_max_unknown_recipients:
                return TOO_MANY_UNKNOWN
            return f"550 5.1.1 <{address}>: no such support address here"
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        if received_count(raw) >= self.settings.max_received_headers:
            self.metrics.smtp_rejected.labels("routing_loop").inc()
            return ROUTING_LOOP
        peer = session.peer[0] if isinstance(session.peer, tuple) else str(session.peer)
        # RFC 8601 §5: only our trusted MTAs' verdicts are kept; anyone can write such a header
        raw = strip_untrusted(raw, self.settings.trusted_authserv_id_set)
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


class _DataLines(asyncio.StreamReader):
    """The session's reader: commands are read from it line by line (aiosmtpd), a message in
    blocks (`IngressSMTP.smtp_DATA`), and what a block held past the end of the message (the
    next pipelined commands) is put back."""

    # a flood of buffered command lines never yields on its own: the loop gets a turn every
    # YIELD_EVERY lines
    YIELD_EVERY = 256
    lines_read = 0

    async def readuntil(self, separator: bytes = b"\n") -> bytes:
        self.lines_read += 1
        if self.lines_read % self.YIELD_EVERY == 0:
            await asyncio.sleep(0)
        return await super().readuntil(separator)

    def line_waiting(self) -> bool:
        """A whole line (a pipelined command) is buffered: reading it will not wait."""
        return b"\n" in self._buffer

    def unread(self, data: bytes) -> None:
        """Bytes read past the end of a message, given back to be read first."""
        if data:
            self._buffer[0:0] = data


# DATA is read a block at a time and split into lines in C (aiosmtpd awaits a read per line:
# three coroutine layers per line, most of an SMTP front's CPU on ordinary mail)
DATA_BLOCK = 64 * 1024
DATA_YIELD_EVERY = 2048  # lines: a block of empty lines must not hold the event loop
LINE_TOO_LONG = "500 Line too long (see RFC5321 4.5.3.1.6)"  # aiosmtpd's texts: `push` words them
DATA_TOO_BIG = "552 Error: Too much mail data"


async def read_message(reader: _DataLines, *, size_limit: int | None, line_limit: int) -> bytes | str | None:
    """One message after `354`, up to `<CR><LF>.<CR><LF>`: its content (dot-unstuffed), or the
    refusal to send once it has all arrived (a line over `line_limit`, the message over
    `size_limit`; nothing more is kept from then on), or None when the connection ended first.

    Lines end with CRLF or a bare LF, handed on as CRLF (as Postfix's
    `smtpd_forbid_bare_newline = normalize`: scripts, appliances and `smtplib.sendmail` with
    bytes send LF-only mail). The line limit counts per line, whichever ending. Only
    `<CR><LF>.<CR><LF>` ends the data: a dot line ending in a bare LF, or after a line that
    did, is content, so `\\n.\\n`, `\\n.\\r\\n` and `\\r\\n.\\n` never end a message early (SMTP
    smuggling)."""
    kept: list[bytes] = []
    refusal: str | None = None
    size = 0
    follows_bare = in_long_line = False
    partial = b""  # the start of a line whose end has not arrived
    while True:
        block = await reader.read(DATA_BLOCK)
        if not block:
            return None
        pieces = (partial + block).split(b"\n")
        partial = pieces.pop()
        for i, piece in enumerate(pieces):
            if i and i % DATA_YIELD_EVERY == 0:
                await asyncio.sleep(0)
            bare = not piece.endswith(b"\r")
            if in_long_line:  # the end of a line already refused
                in_long_line, follows_bare = False, bare
                continue
            if piece == b".\r" and not follows_bare:
                reader.unread(b"".join(p + b"\n" for p in pieces[i + 1:]) + partial)
                if refusal is not None:
                    return refusal
                return b"\n".join(kept) + b"\n" if kept else b""
            follows_bare = bare
            length = len(piece) + (2 if bare else 1)  # as CRLF
            size += length
            if refusal is not None:
                continue
            if length > line_limit:
                refusal = LINE_TOO_LONG
            elif size_limit and size > size_limit:
                refusal = DATA_TOO_BIG
            elif piece in (b".", b".\r"):  # a dot line after (or ending in) a bare LF: content
                kept.append(b".\r")
            else:  # kept without its LF (joined at the end); RFC 5321 4.5.2: a leading dot is transparency
                if bare:
                    piece += b"\r"
                kept.append(piece[1:] if piece.startswith(b".") else piece)
            if refusal is not None:
                kept.clear()  # nothing of a refused message stays in memory
        if len(partial) >= line_limit and not in_long_line:
            # a line that cannot fit, whatever ends it: refused without holding it
            if refusal is None:
                refusal = LINE_TOO_LONG
                kept.clear()
            in_long_line = True
        if in_long_line:  # its last byte tells whether it ends in CRLF or a bare LF
            partial = partial[-1:]


class IngressSMTP(SMTP):
    """aiosmtpd's server with RFC 3463 codes for size refusals, a connection count, and DATA
    read in blocks, its lines ended by CRLF or a bare LF (stored as CRLF)."""

    def __init__(
        self, *args: Any, sessions: set[Any], metrics: Metrics, max_connections: int = 200,
        max_per_ip: int = 50, idle_seconds: float = 300.0, stress_idle_seconds: float = 10.0, **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self._sessions = sessions
        self._metrics = metrics
        self._max_connections = max_connections
        self._max_per_ip = max_per_ip
        self._peer_ip: str | None = None
        self._stressed = False
        self._idle_seconds = idle_seconds
        self._stress_idle_seconds = stress_idle_seconds
        self._held_replies = b""  # replies to pipelined commands not yet written (push)
        self._deadline = 0.0  # loop time at which an idle session is closed (_reset_timeout)

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if self in self._sessions:  # again after STARTTLS: the same session
            super().connection_made(transport)
            return
        peer = transport.get_extra_info("peername")
        self._peer_ip = peer[0] if isinstance(peer, tuple) else None
        same_host = sum(1 for s in self._sessions if s._peer_ip == self._peer_ip) if self._peer_ip else 0
        if same_host >= self._max_per_ip:
            # one host's connections must not take every slot: the others are still served
            self._metrics.smtp_rejected.labels("too_many_connections_from_host").inc()
            assert isinstance(transport, asyncio.Transport)
            transport.write(b"421 4.7.0 Too many connections from your host, try again later\r\n")
            transport.close()
            return
        self._sessions.add(self)
        self._metrics.smtp_sessions.set(len(self._sessions))
        super().connection_made(transport)
        if self._under_stress():
            for session in list(self._sessions):
                session._stress()

    def _under_stress(self) -> bool:
        return len(self._sessions) > STRESS_SHARE * self._max_connections

    def _stress(self) -> None:
        """Idle sessions get the short timeout now, not only at their next command."""
        if not self._stressed and self.idle and self._timeout_handle is not None:
            self._stressed = True
            self._reset_timeout(self._stress_idle_seconds)

    def _reset_timeout(self, duration: float | None = None) -> None:
        # One timer per session, moved only when it must fire sooner; when it fires before the
        # deadline (a command came since), it waits out the rest. aiosmtpd cancels and makes a
        # timer at every command: a twentieth of an SMTP front's CPU under a burst.
        stressed = self._under_stress()
        self._stressed = stressed
        self._deadline = self.loop.time() + (
            duration or (self._stress_idle_seconds if stressed else self._idle_seconds)
        )
        handle = self._timeout_handle
        if handle is None or handle.cancelled() or handle.when() > self._deadline:
            if handle is not None:
                handle.cancel()
            self._timeout_handle = self.loop.call_at(self._deadline, self._idle_check)

    def _idle_check(self) -> None:
        if self._deadline - self.loop.time() > 0.01:
            self._timeout_handle = self.loop.call_at(self._deadline, self._idle_check)
        else:
            self._timeout_cb()

    def connection_lost(self, error: Exception | None) -> None:
        if self not in self._sessions:  # refused in connection_made: no session was started
            return
        self._sessions.discard(self)
        self._metrics.smtp_sessions.set(len(self._sessions))
        super().connection_lost(error)

    async def smtp_DATA(self, arg: str) -> None:
        """aiosmtpd's DATA, the message read by `read_message` (in blocks, not line by line)."""
        if self._decode_data or "DATA" not in self._handle_hooks or not isinstance(self._reader, _DataLines):
            await super().smtp_DATA(arg)
            return
        if await self.check_helo_needed() or await self.check_auth_needed("DATA"):
            return
        assert self.envelope is not None
        if not self.envelope.rcpt_tos:
            await self.push("503 Error: need RCPT command")
            return
        if arg:
            await self.push("501 Syntax: DATA")
            return
        await self.push("354 End data with <CR><LF>.<CR><LF>")
        try:
            message = await read_message(
                self._reader, size_limit=self.data_size_limit, line_limit=self.line_length_limit,
            )
        except asyncio.CancelledError:
            log.info("connection lost during DATA")
            self._writer.close()
            raise
        if message is None:  # the client hung up mid-message: nothing to answer
            self._writer.close()
            return
        if isinstance(message, str):
            await self.push(message)
            self._set_post_data_state()
            return
        self.envelope.content = self.envelope.original_content = message
        status = await self._call_handler_hook("DATA")
        self._set_post_data_state()
        await self.push("250 OK" if status is MISSING else status)

    def _cb_client_connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        # the reader aiosmtpd created, given our methods (the class has no state of its own
        # to set up but `lines_read`, a class default)
        reader.__class__ = _DataLines
        super()._cb_client_connected(reader, writer)

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
        response = text.encode("utf-8" if self.enable_SMTPUTF8 else "ascii") + b"\r\n"
        # Pipelined commands (RFC 2920) get their replies in one write, not one each: a
        # 250 is held while the next command is already buffered (its reading cannot wait),
        # and goes out with the next reply that is not held. Only 250s: a 354 must reach the
        # sender before its message does, a 220 before STARTTLS's handshake, and a refusal
        # may be followed by hanging up. A send on loopback cost as much as a command.
        if text.startswith("250") and isinstance(self._reader, _DataLines) and self._reader.line_waiting():
            self._held_replies += response
            return
        self._writer.write(self._held_replies + response if self._held_replies else response)
        self._held_replies = b""
        await self._writer.drain()
        if text == TOO_MANY_UNKNOWN and self.transport is not None:
            self.transport.close()

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
            max_connections=self.settings.max_connections,
            max_per_ip=self.settings.smtp_max_connections_per_ip,
            idle_seconds=self.settings.smtp_idle_seconds,
            stress_idle_seconds=self.settings.smtp_stress_idle_seconds,
            data_size_limit=self.settings.max_message_bytes,
            enable_SMTPUTF8=True,
            decode_data=False,
            hostname=self.settings.smtp_hostname,
            ident="helpdesk-gateway ESMTP",
            timeout=self.settings.smtp_idle_seconds,
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
