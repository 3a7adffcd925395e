"""Parsing off the event loop: small messages inline, larger ones in a process pool with a
time and memory limit each, so one pathological message cannot freeze SMTP and HTTP.

A message over a parse bound (core.mail.limits), over the time limit or over the memory limit
is the sender's fault (`Unprocessable`). A parser process that dies otherwise is ours
(`ParserCrashed`): the runner counts the attempt and quarantines after its maximum.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import resource
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from core.config import Settings
from core.mail.limits import ParseLimits, bounded_parse
from core.mail.parse import ParsedMail, Unprocessable

log = logging.getLogger(__name__)


class ParserCrashed(Exception):
    """The parser process died while parsing this message."""


def _limit_memory(megabytes: int) -> None:
    """In each parser process: address space capped, so a blow-up is a MemoryError, not the OOM killer."""
    limit = megabytes * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def _parse_in_child(raw: bytes, limits: ParseLimits) -> ParsedMail:
    try:
        return bounded_parse(raw, limits)
    except MemoryError:
        raise Unprocessable("limit memory: parsing needed more memory than allowed") from None


class MailParser:
    def __init__(
        self, limits: ParseLimits, *, inline_bytes: int = 262_144, timeout: float = 20.0,
        processes: int = 2, memory_mb: int = 2048,
    ) -> None:
        self.limits = limits
        self.inline_bytes = inline_bytes
        self.timeout = timeout
        self.processes = processes
        self.memory_mb = memory_mb
        self._pool: ProcessPoolExecutor | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> MailParser:
        limits = ParseLimits(
            header_bytes=settings.parse_max_header_bytes, encoded_words=settings.parse_max_encoded_words,
            mime_depth=settings.parse_max_mime_depth, mime_parts=settings.parse_max_mime_parts,
            attachments=settings.parse_max_attachments, references=settings.parse_max_references,
        )
        return cls(
            limits, inline_bytes=settings.parse_inline_bytes, timeout=settings.parse_timeout_seconds,
            processes=settings.parse_processes, memory_mb=settings.parse_memory_mb,
        )

    async def parse(self, raw: bytes) -> ParsedMail:
        if len(raw) <= self.inline_bytes:
            # bounded by the checks and by its size: quicker here than a trip to another process
            return bounded_parse(raw, self.limits)
        pool = self._pool_now()
        future = asyncio.get_running_loop().run_in_executor(pool, _parse_in_child, raw, self.limits)
        try:
            return await asyncio.wait_for(future, self.timeout)
        except TimeoutError:
            self._kill(pool)
            raise Unprocessable(f"limit parse_seconds: parsing took over {self.timeout:g} s") from None
        except BrokenProcessPool:
            self._kill(pool)
            raise ParserCrashed("the parser process died") from None

    def _pool_now(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn: a fork of a process running an event loop and threads is not safe
            self._pool = ProcessPoolExecutor(
                self.processes, mp_context=multiprocessing.get_context("spawn"),
                initializer=_limit_memory, initargs=(self.memory_mb,),
            )
        return self._pool

    def _kill(self, pool: ProcessPoolExecutor) -> None:
        """A pool cannot cancel one running call: its processes go, and the next parse starts anew."""
        if self._pool is pool:
            self._pool = None
        for process in list((pool._processes or {}).values()):  # noqa: SLF001 - no public way
            if process.is_alive():
                process.kill()
        pool.shutdown(wait=False, cancel_futures=True)

    def close(self) -> None:
        if self._pool is not None:
            self._kill(self._pool)
