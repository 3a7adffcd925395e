"""What the benchmark scripts share: ports, stopping a gateway cleanly, a throwaway work dir."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import psutil


async def read_reply(reader: asyncio.StreamReader, expect: str) -> str:
    """One (possibly multi-line) SMTP reply; raises unless it starts with `expect`."""
    lines = []
    while True:
        line = (await reader.readline()).decode()
        if not line:
            raise ConnectionError("server closed the connection")
        lines.append(line)
        if line[3:4] != "-":
            break
    text = "".join(lines)
    if not text.startswith(expect):
        raise RuntimeError(text.strip()[:80])
    return text


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop_gateway(proc: subprocess.Popen[bytes], data_dir: Path) -> bool:
    """SIGTERM; True if it exited 0 and its embedded PostgreSQL (if any) stopped too."""
    pid_file = data_dir / "pg" / "postmaster.pid"
    pg_pid = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
    proc.send_signal(signal.SIGTERM)
    try:
        code = proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        code = proc.wait()
    pg_alive = False
    if pg_pid is not None:
        for _ in range(50):
            try:
                os.kill(pg_pid, 0)
            except ProcessLookupError:
                break
            time.sleep(0.1)
        else:
            pg_alive = True
    if code != 0 or pg_alive:
        print(f"gateway exit code {code}, embedded PostgreSQL still running: {pg_alive}")
    return code == 0 and not pg_alive


def run_in_work_dir(
    prefix: str, keep: bool, bench: Callable[[Path], Coroutine[Any, Any, bool]]
) -> int:
    """Runs `bench(work_dir)`; exit status 0 if it passed; the dir is removed unless `keep`."""
    work = Path(tempfile.mkdtemp(prefix=prefix))
    try:
        return 0 if asyncio.run(bench(work)) else 1
    finally:
        if keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


def _tree(pid: int, without: int | None) -> list[psutil.Process]:
    """A process and its children, the embedded PostgreSQL's tree left out."""
    skip = set()
    if without is not None:
        try:
            root = psutil.Process(without)
            skip = {root.pid, *(c.pid for c in root.children(recursive=True))}
        except psutil.Error:
            pass
    proc = psutil.Process(pid)
    return [p for p in [proc, *proc.children(recursive=True)] if p.pid not in skip]


def cpu_seconds(pid: int, *, without: int | None = None) -> float:
    """CPU time (user + system) of a process tree so far (PostgreSQL: every backend)."""
    total = 0.0
    for p in _tree(pid, without):
        try:
            times = p.cpu_times()
            total += times.user + times.system
        except psutil.Error:
            pass
    return total


def memory_mb(pid: int, *, without: int | None = None) -> float:
    """PSS of a process and its children (the embedded PostgreSQL's tree left out)."""
    total = 0.0
    for p in _tree(pid, without):
        try:
            total += p.memory_full_info().pss
        except psutil.Error:
            pass
    return total / 2**20
