"""Durable acceptance of raw messages: the row is committed before the caller may say 250.

Concurrent submissions are grouped into one INSERT and one COMMIT (group commit), so the
fsync each commit costs is shared by every message waiting in that batch.
"""

from __future__ import annotations

import asyncio
import collections
import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesHeaderParser
from email.policy import compat32

from core.db import ConnectionLost, Database
from core.enums import InboundStatus
from core.ingest.host_arrivals import HostArrivals
from core.ingest.models import InboundMessage
from core.ingest.notify import CHANNEL
from core.mail.parse import normalize_message_id
from core.mail.text import clean

log = logging.getLogger(__name__)


RATE_WINDOW = 0.25  # seconds of group commits that `arrival_rate` averages over


class IntakeUnavailable(Exception):
    """The message was not stored; the sender should try again later."""


@dataclass
class Submission:
    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    source: str = "smtp"
    peer: str | None = None
    helo: str | None = None
    id: uuid.UUID = field(default_factory=uuid.uuid4)

    def row(self) -> tuple[object, ...]:
        """The values of `INSERT_COLUMNS`, in that order (the recipients as a JSON array)."""
        return (
            self.id, self.source, self.peer, clean(self.helo)[:255] if self.helo else None,
            clean(self.mail_from), json.dumps([clean(r) for r in self.rcpt_tos]), self.raw,
            len(self.raw), hashlib.sha256(self.raw).hexdigest(), header_message_id(self.raw),
        )


_COLUMNS = (("id", "uuid"), ("source", "text"), ("peer", "text"), ("helo", "text"),
            ("mail_from", "text"), ("rcpt_tos", "jsonb"), ("raw", "bytea"), ("size", "int"),
            ("sha256", "text"), ("message_id", "text"))
INSERT_COLUMNS = tuple(name for name, _ in _COLUMNS)
# The whole batch and its wake-up as one statement, run outside a transaction block: it is its
# own transaction, committed before PostgreSQL answers, so one round trip stores the batch
# (BEGIN, the rows, NOTIFY and COMMIT took four, and each costs both sides a send and a
# wake-up). Each column comes as one array; the recipients, an array per row, as JSON.
# Written with the driver directly: through the ORM the insert cost more CPU than the whole
# SMTP dialogue around it.
INSERT = (
    f"WITH stored AS (INSERT INTO {InboundMessage.__tablename__} ({', '.join(INSERT_COLUMNS)}, status) "
    f"SELECT {', '.join('ARRAY(SELECT jsonb_array_elements_text(r.rcpt_tos))' if n == 'rcpt_tos' else f'r.{n}' for n in INSERT_COLUMNS)}, "
    f"'{InboundStatus.pending.value}' "
    f"FROM unnest({', '.join(f'${i}::{t}[]' for i, (_, t) in enumerate(_COLUMNS, 1))}) "
    f"AS r({', '.join(INSERT_COLUMNS)}) RETURNING 1) "
    f"SELECT pg_notify('{CHANNEL}', '') FROM (SELECT count(*) FROM stored) AS done"
)

# a header block of plain `Name: value` lines (and continuations) up to the blank line, and
# in it one unfolded, printable-ASCII Message-ID: the usual case, read without building a
# message object; anything else goes to the email parser
_HEADER_BLOCK = re.compile(rb"(?:[!-9;-~]+:[^\n]*\n|[ \t][^\n]*\n)*?\r?\n")
_MESSAGE_ID_NAME = re.compile(rb"^message-id:", re.I | re.M)
_MESSAGE_ID_LINE = re.compile(rb"^message-id:[ \t]*([!-~][ -~]*?)[ \t]*\r?\n(?![ \t])", re.I | re.M)


def header_message_id(raw: bytes) -> str | None:
    """The Message-ID from the header block only: cheap enough for the SMTP hot path."""
    head = _HEADER_BLOCK.match(raw)
    if head is not None and len(_MESSAGE_ID_NAME.findall(raw, 0, head.end())) == 1:
        line = _MESSAGE_ID_LINE.search(raw, 0, head.end())
        if line is not None:
            return normalize_message_id(line.group(1).decode("ascii"))
    return _parsed_message_id(raw)


def _parsed_message_id(raw: bytes) -> str | None:
    try:
        headers = BytesHeaderParser(policy=compat32).parsebytes(raw)
        value = headers.get("Message-ID")
        return normalize_message_id(str(value)) if value is not None else None
    except Exception:
        return None


class Intake:
    def __init__(
        self, db: Database, *, on_commit: Callable[[], None] = lambda: None, max_batch: int = 200,
        host: HostArrivals | None = None,
    ) -> None:
        self.db = db
        self.on_commit = on_commit
        self.max_batch = max_batch
        self.host = host  # shared with this host's other serving processes, if any
        self._queue: asyncio.Queue[tuple[Submission, asyncio.Future[uuid.UUID]]] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._recent: collections.deque[tuple[float, int]] = collections.deque()  # (loop time, messages)

    async def start(self) -> None:
        self._task = asyncio.create_task(self._write_loop())

    async def stop(self) -> None:
        """Write what is queued, then stop."""
        if self._task is None:
            return
        await self._queue.join()
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
        self._task = None

    async def submit(self, submission: Submission) -> uuid.UUID:
        """Returns once the message is committed; raises `IntakeUnavailable` otherwise."""
        if self._task is None:
            raise IntakeUnavailable("intake is not running")
        future: asyncio.Future[uuid.UUID] = asyncio.get_running_loop().create_future()
        await self._queue.put((submission, future))
        return await future

    async def _write_loop(self) -> None:
        while True:
            batch = [await self._queue.get()]
            while len(batch) < self.max_batch and not self._queue.empty():
                batch.append(self._queue.get_nowait())
            try:
                await self._write(batch)
            finally:
                for _ in batch:
                    self._queue.task_done()

    async def _write(self, batch: list[tuple[Submission, asyncio.Future[uuid.UUID]]]) -> None:
        now = asyncio.get_running_loop().time()
        self._recent.append((now, len(batch)))
        self._forget_before(now - RATE_WINDOW)
        if self.host is not None:
            # the host's clock, not this loop's: another process's loop may count differently
            self.host.publish(time.monotonic(), self._rate())
        rows = [submission.row() for submission, _ in batch]
        try:
            try:
                await self._insert(rows)
            except ConnectionLost:
                await self._insert(rows)  # a pooled connection had died (database restart): once more
        except Exception as exc:
            log.error("could not store %d inbound message(s): %s", len(batch), exc)
            for _, future in batch:
                if not future.done():
                    future.set_exception(IntakeUnavailable(str(exc)))
            return
        for submission, future in batch:
            if not future.done():
                future.set_result(submission.id)
        self.on_commit()

    async def _insert(self, rows: list[tuple[object, ...]]) -> None:
        columns = list(zip(*rows, strict=True))
        async with self.db.driver() as connection:  # the statement commits itself
            await connection.execute(INSERT, *columns)  # NOTIFY wakes runners elsewhere, on commit

    def arrival_rate(self) -> float:
        """Messages submitted per second over the last `RATE_WINDOW` seconds."""
        self._forget_before(asyncio.get_running_loop().time() - RATE_WINDOW)
        return self._rate()

    def _rate(self) -> float:
        return sum(n for _, n in self._recent) / RATE_WINDOW

    def host_arrival_rate(self) -> float:
        """Messages submitted per second to every serving process of this host (this one's
        alone when it is the only one)."""
        if self.host is None:
            return self.arrival_rate()
        return self.host.total(time.monotonic(), RATE_WINDOW)

    @property
    def processes(self) -> int:
        """The serving processes of this host that take mail."""
        return 1 if self.host is None else self.host.count

    def _forget_before(self, horizon: float) -> None:
        while self._recent and self._recent[0][0] < horizon:
            self._recent.popleft()
