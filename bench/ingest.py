"""SMTP ingress benchmark: the durable gateway against a bare aiosmtpd server, same run.

    .venv/bin/python bench/ingest.py [-n 3000] [--connections 8] [--rate 200] [--seconds 15]
                                     [--split] [--processes N]

Both servers run in subprocesses; this process is only the client and the monitor.
Target: accepted msg/s >= 40% of the bare rate with one process, >= 100% of the same single
bare aiosmtpd process with `--processes 2` (two cores); and no growing backlog at --rate.
Each full-speed phase also prints the CPU every part spent per accepted message (the server,
PostgreSQL, this client) and the rate those costs allow on this machine's cores: with the
client on the same machine, that bound, not the code path alone, can decide the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
import psutil
from common import cpu_seconds, free_port, read_reply, run_in_work_dir, stop_gateway  # bench/, beside this file

ROOT = Path(__file__).resolve().parent.parent
TARGET_RATIO = 0.40
FILLER = "The printer on the third floor prints every page twice and then jams again. "


@dataclass
class Load:
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)
    failures: dict[str, int] = field(default_factory=dict)
    cpu: dict[str, float] = field(default_factory=dict)  # part ▸ CPU ms per accepted message

    @property
    def rate(self) -> float:
        return len(self.latencies) / self.elapsed if self.elapsed else 0.0

    def pct(self, p: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] * 1000 if ordered else 0.0

    def line(self) -> str:
        failed = f", failed {self.failures}" if self.failures else ""
        cpu = ", ".join(f"{part} {ms:.2f}" for part, ms in self.cpu.items())
        return (f"{len(self.latencies)} accepted in {self.elapsed:.2f}s = {self.rate:,.0f} msg/s, "
                f"p50 {self.pct(50):.1f} ms, p99 {self.pct(99):.1f} ms{failed}"
                + (f"; CPU ms/message: {cpu}" if cpu else ""))

    @property
    def cpu_total(self) -> float:
        return sum(self.cpu.values())


async def measured_load(port: int, payloads: list[bytes], connections: int, parts: dict[str, Callable[[], float]]) -> Load:
    """`run_load` at full speed, with the CPU each part (a process tree's CPU seconds so far;
    `client` is this process) spent per accepted message."""
    parts = {**parts, "client": time.process_time}
    before = {part: read() for part, read in parts.items()}
    load = await run_load(port, payloads, connections, None)
    accepted = max(len(load.latencies), 1)
    load.cpu = {part: (read() - before[part]) * 1000 / accepted for part, read in parts.items()}
    return load


def message(tag: str, i: int) -> bytes:
    head = (f"From: Customer {i % 400} <customer{i % 400}@customers.example>\r\n"
            f"To: support@example.com\r\nSubject: [{tag}] help needed, case {i}\r\n"
            f"Message-ID: <bench-{tag}-{i}-{os.getpid()}@customers.example>\r\n"
            f"Date: {time.strftime('%a, %d %b %Y %H:%M:%S +0000', time.gmtime())}\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
    body = (FILLER.strip() + "\r\n") * (2048 // len(FILLER) + 1)
    return (head + body[: 2046 - len(head)] + "\r\n").encode()


class SmtpClient:
    """A persistent ESMTP session; pipelines MAIL/RCPT/DATA when the server offers it."""

    async def connect(self, port: int) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", port)
        await self.reply("220")
        self.writer.write(b"EHLO bench.client\r\n")
        self.pipelining = "PIPELINING" in await self.reply("250")

    async def reply(self, expect: str) -> str:
        return await read_reply(self.reader, expect)

    async def send(self, payload: bytes) -> float:
        """One transaction; returns seconds from the end of the payload to the 250."""
        commands = [b"MAIL FROM:<bench@customers.example>\r\n",
                    b"RCPT TO:<support@example.com>\r\n", b"DATA\r\n"]
        if self.pipelining:
            self.writer.write(b"".join(commands))
            for expect in ("250", "250", "354"):
                await self.reply(expect)
        else:
            for command, expect in zip(commands, ("250", "250", "354")):
                self.writer.write(command)
                await self.reply(expect)
        self.writer.write(payload + b".\r\n")
        started = time.perf_counter()
        await self.reply("250")
        return time.perf_counter() - started

    async def close(self) -> None:
        self.writer.write(b"QUIT\r\n")
        await self.reply("221")
        self.writer.close()


async def run_load(port: int, payloads: list[bytes], connections: int, rate: float | None) -> Load:
    """Sends every payload once over `connections` sessions, as fast as possible or at `rate`."""
    load, queue = Load(), iter(enumerate(payloads))
    clients = [SmtpClient() for _ in range(connections)]
    await asyncio.gather(*(c.connect(port) for c in clients))
    start = time.perf_counter()

    async def worker(client: SmtpClient) -> None:
        for i, payload in queue:
            if rate is not None and (delay := start + i / rate - time.perf_counter()) > 0:
                await asyncio.sleep(delay)
            try:
                load.latencies.append(await client.send(payload))
            except RuntimeError as exc:  # a refusal: note it, reset the transaction
                load.failures[str(exc)] = load.failures.get(str(exc), 0) + 1
                client.writer.write(b"RSET\r\n")
                await client.reply("250")

    await asyncio.gather(*(worker(c) for c in clients))
    load.elapsed = time.perf_counter() - start
    await asyncio.gather(*(c.close() for c in clients))
    return load


# ---- servers ---------------------------------------------------------------------------

def bare_server(port: int) -> None:
    """`--bare-server PORT`: aiosmtpd answering 250 to everything, nothing stored."""
    from aiosmtpd.smtp import SMTP

    class Answer250:
        async def handle_EHLO(self, server, session, envelope, hostname, responses):  # type: ignore[no-untyped-def]
            session.host_name = hostname
            return [*responses[:-1], "250-PIPELINING", responses[-1]]

        async def handle_DATA(self, server, session, envelope) -> str:  # type: ignore[no-untyped-def]
            return "250 OK"

    async def main() -> None:
        loop = asyncio.get_running_loop()
        server = await loop.create_server(lambda: SMTP(Answer250(), decode_data=False), "127.0.0.1", port)
        print("bare SMTP listening", flush=True)
        async with server:
            await server.serve_forever()

    asyncio.run(main())


def start_bare() -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, __file__, "--bare-server", str(port)], stdout=subprocess.PIPE)
    assert proc.stdout is not None and b"listening" in proc.stdout.readline()
    return proc, port


def start_gateway(data_dir: Path, log_path: Path, roles: str | None = None,
                  env: dict[str, str] | None = None, processes: int = 1) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    # `python -m gateway` in this tree (the `helpdesk` script of an editable install runs the
    # tree it was installed from, whichever tree this bench is in)
    cmd = [sys.executable, "-m", "gateway", "serve", "--data-dir", str(data_dir), "--smtp-port", str(port),
           "--http-port", str(free_port()), "--processes", str(processes)]
    if roles:
        cmd += ["--roles", roles]
    proc = subprocess.Popen(cmd, stdout=log_path.open("wb"), stderr=subprocess.STDOUT,
                            env={**os.environ, **(env or {})}, cwd=ROOT)
    ready = "SMTP listening" if roles is None or "smtp" in roles else "roles:"
    deadline = time.monotonic() + 180
    while ready not in log_path.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"gateway did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)
    return proc, port


def database_dsn(data_dir: Path) -> str:
    if url := os.environ.get("HELPDESK_DATABASE_URL"):
        return url.replace("postgresql+asyncpg://", "postgresql://", 1)
    lines = (data_dir / "pg" / "postmaster.pid").read_text().splitlines()
    return f"postgresql://postgres@/postgres?host={lines[4]}&port={lines[3]}"


# ---- measurements against the gateway ----------------------------------------------------

async def pending(db: asyncpg.Connection) -> int:
    return int(await db.fetchval("select count(*) from inbound_messages where status = 'pending'"))


async def wait_drained(db: asyncpg.Connection, timeout: float = 600) -> float:
    """Polls until no row is pending; returns the moment (perf_counter) it happened."""
    deadline = time.perf_counter() + timeout
    while await pending(db) and time.perf_counter() < deadline:
        await asyncio.sleep(0.05)
    return time.perf_counter()


async def ingest_lag(db: asyncpg.Connection, tag: str) -> str:
    row = await db.fetchrow(
        "select percentile_cont(array[0.5, 0.99]) within group (order by extract(epoch from"
        " processed_at - received_at)) as lag, count(*) filter (where status <> 'processed') as odd"
        " from inbound_messages where message_id like $1", f"%bench-{tag}-%")
    p50, p99 = row["lag"] or (0.0, 0.0)
    return (f"ingest lag (received -> processed) p50 {p50 * 1000:.0f} ms, p99 {p99 * 1000:.0f} ms; "
            f"not processed: {row['odd']}")


def backlog_grew(samples: list[int], rate: float) -> tuple[bool, float, float]:
    third = max(1, len(samples) // 3)
    first, last = sum(samples[:third]) / third, sum(samples[-third:]) / third
    return last - first > max(10.0, 0.5 * rate), first, last


async def bare_phase(args: argparse.Namespace) -> Load:
    bare, port = start_bare()
    try:
        await run_load(port, [message("warm", i) for i in range(200)], args.connections, None)
        load = await measured_load(port, [message("p1", i) for i in range(args.n)], args.connections,
                                   {"server": lambda: cpu_seconds(bare.pid)})
    finally:
        bare.terminate()
        bare.wait()
    print(f"[1] bare aiosmtpd       : {load.line()}", flush=True)
    return load


async def full_speed_phase(
    db: asyncpg.Connection, port: int, args: argparse.Namespace, gateway_pid: int, pg_pid: int,
) -> tuple[Load, float]:
    """Returns the acceptance figures and the ticket-creation rate."""
    await run_load(port, [message("warm", i) for i in range(200)], args.connections, None)
    await wait_drained(db)
    tickets_before = await db.fetchval("select count(*) from tickets")
    start = time.perf_counter()
    load = await measured_load(port, [message("p2", i) for i in range(args.n)], args.connections, {
        "gateway": lambda: cpu_seconds(gateway_pid, without=pg_pid), "PostgreSQL": lambda: cpu_seconds(pg_pid),
    })
    backlog_at_end = await pending(db)
    drained = await wait_drained(db) - start
    created = await db.fetchval("select count(*) from tickets") - tickets_before
    print(f"[2] gateway, full speed : {load.line()}")
    print(f"    tickets created     : {created} in {drained:.2f}s = {created / drained:,.0f} msg/s "
          f"(backlog when sending ended: {backlog_at_end})")
    print(f"    {await ingest_lag(db, 'p2')}", flush=True)
    return load, created / drained


async def steady_phase(db: asyncpg.Connection, port: int, args: argparse.Namespace) -> bool:
    """Sends at a fixed rate, sampling the pending backlog each second; returns whether it grew."""
    payloads = [message("p3", i) for i in range(int(args.rate * args.seconds))]
    samples: list[int] = []

    async def sample() -> None:
        while True:
            samples.append(await pending(db))
            await asyncio.sleep(1)

    sampler = asyncio.create_task(sample())
    load = await run_load(port, payloads, args.connections, args.rate)
    sampler.cancel()
    sent = time.perf_counter()
    drained = await wait_drained(db) - sent
    grew, first, last = backlog_grew(samples, args.rate)
    print(f"[3] gateway at {args.rate:.0f} msg/s for {args.seconds:.0f}s: {load.line()}")
    print(f"    pending backlog per second: {samples}")
    print(f"    first third avg {first:.1f}, last third avg {last:.1f} -> {'GROWING' if grew else 'steady'}; "
          f"drained {drained:.2f}s after sending ended")
    print(f"    {await ingest_lag(db, 'p3')}", flush=True)
    return grew


async def bench(args: argparse.Namespace, work: Path) -> bool:
    if (busy := psutil.cpu_percent(interval=1.0)) > 20:
        print(f"note: the machine was {busy:.0f}% busy before start; other work skews these figures")
    bare = await bare_phase(args)
    log_path = work / "gateway.log"
    # --split: the production layout for a 2-core box, mail in one process and workers in another
    gateway, port = start_gateway(work / "data", log_path, roles="smtp,api" if args.split else None,
                                  processes=args.processes)
    worker = None
    try:
        if args.split:
            url = "postgresql+asyncpg://" + database_dsn(work / "data").removeprefix("postgresql://")
            worker, _ = start_gateway(work / "worker", work / "worker.log", roles="worker,scheduler",
                                      env={"HELPDESK_DATABASE_URL": url})
        db = await asyncpg.connect(database_dsn(work / "data"))
        pg_pid = psutil.Process(await db.fetchval("SELECT pg_backend_pid()")).ppid()  # the postmaster
        load, tickets_rate = await full_speed_phase(db, port, args, gateway.pid, pg_pid)
        grew = await steady_phase(db, port, args)
        await db.close()
    finally:
        if worker is not None:
            worker.send_signal(signal.SIGTERM)
            worker.wait(60)
        ok_exit = stop_gateway(gateway, work / "data")
    logs = [log_path] + ([work / "worker.log"] if args.split else [])
    problems = [line for path in logs for line in path.read_text(errors="replace").splitlines()
                if " ERROR " in line or " WARNING " in line or "Traceback" in line]
    ratio = load.rate / bare.rate
    target = TARGET_RATIO if args.processes == 1 else 1.0
    print("\n=== summary ===")
    if args.processes > 1:
        print(f"gateway: {args.processes} processes (serve --processes); bare: one aiosmtpd process")
    print(f"bare {bare.rate:,.0f} msg/s | gateway accepted {load.rate:,.0f} msg/s "
          f"(p50 {load.pct(50):.1f} ms, p99 {load.pct(99):.1f} ms) | tickets {tickets_rate:,.0f} msg/s")
    print(f"ratio gateway/bare {ratio:.0%} (target >= {target:.0%}): {'PASS' if ratio >= target else 'FAIL'}")
    # what the machine allows: every part (this client too) shares its cores
    cores = os.cpu_count() or 1
    print(f"CPU per accepted message (ms): bare {bare.cpu_total:.2f} ({_parts(bare)}); "
          f"gateway {load.cpu_total:.2f} ({_parts(load)})")
    bare_bound = min(1000 / bare.cpu["server"], cores * 1000 / bare.cpu_total)  # one process: one core
    gateway_bound = cores * 1000 / load.cpu_total
    print(f"at these costs: the bare server (one process) at most {bare_bound:,.0f} msg/s; the gateway, its "
          f"PostgreSQL and the client sharing {cores} cores at most {gateway_bound:,.0f} msg/s "
          f"({gateway_bound / bare_bound:.0%} of the bare bound)")
    print(f"backlog at {args.rate:.0f} msg/s: {'FAIL (growing)' if grew else 'PASS (steady)'}")
    print(f"gateway SIGTERM exit: {'PASS (0, PostgreSQL stopped)' if ok_exit else 'FAIL'}; "
          f"log problems: {len(problems)}")
    for line in problems[:10]:
        print("   ", line[:200])
    return ratio >= target and not grew and ok_exit


def _parts(load: Load) -> str:
    return ", ".join(f"{part} {ms:.2f}" for part, ms in load.cpu.items())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("-n", type=int, default=3000, help="messages per full-speed phase")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--rate", type=float, default=200.0, help="steady phase, msg/s")
    parser.add_argument("--seconds", type=float, default=15.0, help="steady phase duration")
    parser.add_argument("--keep", action="store_true", help="keep the data dir and gateway log")
    parser.add_argument("--split", action="store_true",
                        help="run --roles smtp,api and --roles worker,scheduler as two processes")
    parser.add_argument("--processes", type=int, default=1,
                        help="serve --processes N for the gateway (the bare server stays one process)")
    parser.add_argument("--bare-server", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        bare_server(args.bare_server)
        return 0
    return run_in_work_dir("hd-bench-", args.keep, lambda work: bench(args, work))


if __name__ == "__main__":
    sys.exit(main())
