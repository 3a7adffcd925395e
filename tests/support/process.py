"""A gateway in a subprocess, for tests that kill it, signal it or run its CLI."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class GatewayProcess:
    """`python -m gateway serve` in a subprocess, its output drained by reader threads."""

    def __init__(self, args: list[str], env: dict[str, str], cwd: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", *args],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env, cwd=cwd,
        )
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self._changed = threading.Condition()
        self._readers = [
            threading.Thread(target=self._drain, args=(self.proc.stdout, self.stdout), daemon=True),
            threading.Thread(target=self._drain, args=(self.proc.stderr, self.stderr), daemon=True),
        ]
        for reader in self._readers:
            reader.start()

    def _drain(self, pipe, lines: list[str]) -> None:  # type: ignore[no-untyped-def]
        for line in iter(pipe.readline, b""):
            with self._changed:
                lines.append(line.decode(errors="replace").rstrip("\n"))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for_line(self, prefix: str, timeout: float = 60.0) -> str:
        """The first stdout line starting with `prefix`; fails if the process dies first."""
        def found() -> str | None:
            return next((line for line in self.stdout if line.startswith(prefix)), None)

        with self._changed:
            self._changed.wait_for(
                lambda: found() is not None or not any(r.is_alive() for r in self._readers),
                timeout,
            )
            line = found()
        if line is None:
            raise AssertionError(
                f"no {prefix!r} on stdout (exit code {self.proc.poll()}):\n" + self.output()
            )
        return line

    def output(self) -> str:
        return "\n".join(["--- stdout", *self.stdout, "--- stderr", *self.stderr[-40:]])

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(30)

    def terminate(self, timeout: float = 30.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout)
        for reader in self._readers:
            reader.join(10)
        return code

    def ensure_dead(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(30)
