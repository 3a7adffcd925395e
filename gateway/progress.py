"""Progress of a long command: a bar with rate and time left on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


def _duration(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


class Progress:
    """Called with (done, total). On a terminal it redraws one line; in a log or a pipe it
    writes a line at most every `every` seconds (and at the end), so a cron mail stays short."""

    def __init__(self, label: str, stream: TextIO | None = None, *, every: float = 5.0) -> None:
        self.label = label
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every = every
        self.started = time.monotonic()
        self.last_line = self.started

    def __call__(self, done: int, total: int) -> None:
        now = time.monotonic()
        elapsed = max(now - self.started, 1e-6)
        rate = done / elapsed
        left = (total - done) / rate if rate > 0 else 0.0
        if self.tty:
            width = 30
            filled = width * done // max(total, 1)
            self.stream.write(
                f"\r{self.label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
                f"{rate:.0f} msg/s, {_duration(left)} left "
            )
            if done >= total:
                self.stream.write("\n")
        elif done >= total or now - self.last_line >= self.every:
            self.last_line = now
            self.stream.write(f"{self.label}: {done}/{total} ({rate:.0f} msg/s, {_duration(left)} left)\n")
        self.stream.flush()
