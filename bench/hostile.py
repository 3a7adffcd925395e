"""Pathological messages against a running gateway: HTTP latency meanwhile, memory, outcome.

    .venv/bin/python bench/hostile.py [--keep]

Starts `helpdesk serve` (all roles, embedded PostgreSQL), then for a quiet baseline and for each
pathological input (tests/support/hostile.py) sends it over SMTP and, until the inbound record is
settled, asks `GET /api/v1/tickets?limit=1` every 20 ms. Prints, per input, the outcome, the
HTTP latency (p50, p99, max) during processing and the server's peak RSS (VmHWM) growth.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.common import free_port, run_in_work_dir, stop_gateway  # noqa: E402
from tests.support import hostile  # noqa: E402

# `python -m gateway` in this tree: the `helpdesk` script of an editable install runs the tree
# it was installed from, whichever tree this bench is in (run with cwd=ROOT)
GATEWAY = [sys.executable, "-m", "gateway"]
INPUTS = {
    "encoded-word Subject 400 KB": hostile.encoded_word_header,
    "MIME 3,000 deep": hostile.deep_mime,
    "message/rfc822 3,000 deep": hostile.deep_messages,
    "100,000 parts": hostile.many_parts,
    "50,000 References": hostile.many_references,
    "150 attachments": hostile.many_attachments,
    "NULs everywhere": hostile.nul_everywhere,
}


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


SENDER = """
import smtplib, sys
raw = sys.stdin.buffer.read().replace(b"\\r\\n", b"\\n").replace(b"\\n", b"\\r\\n")
with smtplib.SMTP("127.0.0.1", int(sys.argv[1]), timeout=300) as client:
    client.ehlo("bench.test")
    client.mail("bench@hostile.test")
    client.rcpt("support@example.com")
    print(client.data(raw)[1].decode().rsplit(" ", 1)[-1])
"""


async def send(port: int, raw: bytes) -> str:
    """In another process: the client's own work must not be measured as the server's latency."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-c", SENDER, str(port), stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await proc.communicate(raw)
    return out.decode().strip()


async def sample(http: aiohttp.ClientSession, done: asyncio.Event) -> list[float]:
    latencies = []
    while not done.is_set():
        started = time.perf_counter()
        async with http.get("/api/v1/tickets", params={"limit": "1"}) as response:
            await response.read()
            assert response.status == 200, response.status
        latencies.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.02)
    return latencies


async def one(http: aiohttp.ClientSession, smtp_port: int, raw: bytes | None) -> tuple[str, list[float]]:
    done = asyncio.Event()
    sampler = asyncio.create_task(sample(http, done))
    outcome = "baseline"
    try:
        if raw is None:
            await asyncio.sleep(3)
        else:
            inbound_id = await send(smtp_port, raw)
            while True:
                record = await (await http.get(f"/api/v1/inbound/{inbound_id}")).json()
                if record["status"] != "pending":
                    outcome = f"{record['status']}: {(record['reason'] or record['matched_rule'] or '')[:60]}"
                    break
                await asyncio.sleep(0.05)
    finally:
        done.set()
    return outcome, await sampler


async def bench(work: Path) -> bool:
    smtp_port, http_port = free_port(), free_port()
    log = work / "gateway.log"
    proc = subprocess.Popen(
        [*GATEWAY, "serve", "--data-dir", str(work / "data"), "--smtp-port", str(smtp_port),
         "--http-port", str(http_port)],
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
        env={"PATH": "/usr/bin:/bin", "HELPDESK_SENDER_VERIFICATION": "off", "HELPDESK_API_RATE_PER_MINUTE": "0"},
        cwd=ROOT,
    )
    try:
        deadline = time.monotonic() + 180
        while "HTTP listening" not in log.read_text(errors="replace"):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(log.read_text(errors="replace")[-3000:])
            await asyncio.sleep(0.2)
        token = (work / "data" / "admin-token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        print(f"{'input':30} {'outcome':55} {'p50 ms':>7} {'p99 ms':>7} {'max ms':>7} {'RSS+ MB':>8}")
        async with aiohttp.ClientSession(f"http://127.0.0.1:{http_port}", headers=headers) as http:
            for name, make in [("(quiet baseline)", None), *INPUTS.items()]:
                before = peak_rss_mb(proc.pid)
                outcome, lat = await one(http, smtp_port, make() if make else None)
                lat.sort()
                p99 = lat[min(len(lat) - 1, int(len(lat) * 0.99))]
                growth = peak_rss_mb(proc.pid) - before
                print(f"{name:30} {outcome:55} {statistics.median(lat):7.1f} {p99:7.1f} {lat[-1]:7.1f} {growth:8.1f}")
    finally:
        ok = stop_gateway(proc, work / "data")
    return ok


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    return run_in_work_dir("helpdesk-hostile-", parser.parse_args().keep, bench)


if __name__ == "__main__":
    raise SystemExit(main())
