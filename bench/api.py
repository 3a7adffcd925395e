"""HTTP API benchmark: the gateway's ticket routes against a bare aiohttp + asyncpg handler, same run.

    .venv/bin/python bench/api.py [--tickets 100000] [--connections 32] [--seconds 10] [--rate 300]

The gateway (`helpdesk serve --roles api`, embedded PostgreSQL), the bare server and the load
generator each run in their own process; this one loads the data, runs the phases and prints.
Per endpoint: (a) maximum throughput over --connections keep-alive connections (wrk when it is
installed, else an aiohttp client), (b) an open-loop aiohttp client at --rate req/s whose latency
counts from each request's *scheduled* send time, so a stalled server is not hidden (no
coordinated omission). Any non-2xx answer is counted as an error. The load generators are in
bench/api_load.py. `--tree DIR` measures a patched copy of the source tree (`python -m gateway`
run from DIR) against the same bare baseline, to test a proposed change before making it.
Targets (the issue): GET /tickets/{id} >= 50% of the bare rate; p99 < 50 ms at 300 req/s for all three.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import psutil
from api_load import (  # bench/, beside this file
    Result,
    Target,
    run_client,
    run_wrk,
)
from common import free_port, run_in_work_dir, stop_gateway  # bench/, beside this file

ROOT = Path(__file__).resolve().parent.parent
HELPDESK = ROOT / ".venv" / "bin" / "helpdesk"
TARGET_RATIO = 0.50
TARGET_P99_MS = 50.0
COMMENT = {"body": "Thanks, we have ordered a new fuser unit; it arrives on Tuesday. [api-bench]"}

# ---- data --------------------------------------------------------------------------------

LOAD_SQL = [
    """INSERT INTO customers (id, name, email, created_at, updated_at)
       SELECT gen_random_uuid(), 'Customer ' || g, 'customer' || g || '@api-bench.example',
              now() - interval '3 years', now() - interval '3 years'
       FROM generate_series(1, $1::int) g""",
    # statuses new/open/pending/solved in turn; created_at one ticket every ~5 minutes back in time
    """WITH c AS (SELECT array_agg(id) AS ids FROM customers WHERE email LIKE '%@api-bench.example'),
            grp AS (SELECT min(id::text)::uuid AS id FROM groups)
       INSERT INTO tickets (id, number, subject, description, status, priority, type, channel,
                            requester_id, group_id, tags, custom_fields, first_response_at,
                            solved_at, created_at, updated_at)
       SELECT gen_random_uuid(), nextval('ticket_number_seq'),
              'Printer on floor ' || g % 7 || ' jams again (case ' || g || ')',
              'The printer on the third floor prints every page twice and then jams. Case ' || g || '.',
              (ARRAY['new','open','pending','solved'])[1 + g % 4]::ticket_status,
              (ARRAY['low','normal','normal','high','urgent'])[1 + g % 5]::ticket_priority,
              (ARRAY['question','incident','problem','task'])[1 + (g / 7) % 4]::ticket_type,
              'email', c.ids[1 + g % array_length(c.ids, 1)], grp.id,
              CASE WHEN g % 10 = 0 THEN ARRAY['vip'] ELSE '{}'::text[] END, '{}'::jsonb,
              CASE WHEN g % 4 <> 0 THEN t.ts + interval '1 hour' END,
              CASE WHEN g % 4 = 3 THEN t.ts + interval '1 day' END,
              t.ts, t.ts + (g % 4) * interval '1 hour'
       FROM generate_series(1, $1::int) g CROSS JOIN c CROSS JOIN grp
       CROSS JOIN LATERAL (SELECT now() - ($1::int - g) * interval '5 minutes'
                                  - random() * interval '4 minutes' AS ts) t""",
    # the first public comment and the creation audit entry of every ticket
    """INSERT INTO ticket_comments (id, ticket_id, author_type, author_customer_id, visibility, body, created_at)
       SELECT gen_random_uuid(), id, 'customer', requester_id, 'public', description, created_at
       FROM tickets WHERE subject LIKE 'Printer on floor %'""",
    """INSERT INTO ticket_audit_logs (id, ticket_id, actor_type, actor_id, action, changes, via, created_at)
       SELECT gen_random_uuid(), id, 'customer', requester_id, 'create', '{}', 'email', created_at
       FROM tickets WHERE subject LIKE 'Printer on floor %'""",
]


async def load_tickets(dsn: str, n: int) -> list[str]:
    """n tickets (one customer per ten), each with a comment and an audit entry; their UUIDs."""
    db = await asyncpg.connect(dsn)
    try:
        async with db.transaction():
            await db.execute(LOAD_SQL[0], max(1, n // 10))
            await db.execute(LOAD_SQL[1], n)
            for sql in LOAD_SQL[2:]:
                await db.execute(sql)
        for table in ("customers", "tickets", "ticket_comments", "ticket_audit_logs"):
            await db.execute(f"VACUUM ANALYZE {table}")
        return [str(r["id"]) for r in await db.fetch("SELECT id FROM tickets WHERE deleted_at IS NULL")]
    finally:
        await db.close()


# ---- servers -----------------------------------------------------------------------------

def bare_server(port: int, dsn: str, pool_size: int) -> None:
    """`--bare-server PORT DSN`: one route, one asyncpg primary-key SELECT, the row as JSON."""
    import uuid

    from aiohttp import web

    async def main() -> None:
        pool = await asyncpg.create_pool(dsn, min_size=pool_size, max_size=2 * pool_size)

        async def show(request: web.Request) -> web.Response:
            try:
                ticket_id = uuid.UUID(request.match_info["id"])
            except ValueError:
                raise web.HTTPNotFound() from None
            row = await pool.fetchrow("SELECT * FROM tickets WHERE id = $1", ticket_id)
            if row is None:
                raise web.HTTPNotFound()
            return web.json_response(text=json.dumps(dict(row), default=str))

        app = web.Application()
        app.router.add_get("/tickets/{id}", show)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        print("bare HTTP listening", flush=True)
        await asyncio.Event().wait()

    asyncio.run(main())


def start_bare(dsn: str, pool_size: int) -> tuple[subprocess.Popen[bytes], int]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, __file__, "--bare-server", str(port), dsn, "--pool-size", str(pool_size)],
        stdout=subprocess.PIPE,
    )
    assert proc.stdout is not None and b"listening" in proc.stdout.readline()
    return proc, port


def start_gateway(data_dir: Path, log_path: Path, tree: Path | None) -> tuple[subprocess.Popen[bytes], int]:
    """`helpdesk serve --roles api`; with --tree, `python -m gateway` from that source tree."""
    port = free_port()
    base = [sys.executable, "-m", "gateway"] if tree else [str(HELPDESK)]
    cmd = [*base, "serve", "--roles", "api", "--data-dir", str(data_dir), "--http-port", str(port)]
    # one token drives all the load here: the per-token rate limit would only measure itself
    env = {**os.environ, "HELPDESK_API_RATE_PER_MINUTE": "0"}
    proc = subprocess.Popen(cmd, stdout=log_path.open("wb"), stderr=subprocess.STDOUT, cwd=tree or None, env=env)
    deadline = time.monotonic() + 180
    while "HTTP listening" not in log_path.read_text(errors="replace"):
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit(f"gateway did not start:\n{log_path.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)
    return proc, port


def admin_token(data_dir: Path, tree: Path | None) -> str:
    """The first-start token, or (an external database already has an admin) a new one."""
    if (path := data_dir / "admin-token").exists():
        return path.read_text().strip()
    base = [sys.executable, "-m", "gateway"] if tree else [str(HELPDESK)]
    out = subprocess.run(
        [*base, "--data-dir", str(data_dir), "token", "create", "--email", "api-bench@localhost",
         "--role", "admin"], capture_output=True, text=True, check=True, cwd=tree or None,
    )
    return out.stdout.strip()


def database_dsn(data_dir: Path) -> str:
    if url := os.environ.get("HELPDESK_DATABASE_URL"):
        return url.replace("postgresql+asyncpg://", "postgresql://", 1)
    lines = (data_dir / "pg" / "postmaster.pid").read_text().splitlines()
    return f"postgresql://postgres@/postgres?host={lines[4]}&port={lines[3]}"


# ---- CPU accounting ----------------------------------------------------------------------

class CpuMeter:
    """CPU seconds of the server, of PostgreSQL (postmaster and backends) and of the load
    generator (finished children of this process) over one phase, as % of one core."""

    def __init__(self, server_pid: int, pg_pid: int | None) -> None:
        self.server, self.pg_pid = psutil.Process(server_pid), pg_pid

    def _pg(self) -> dict[int, float]:
        if self.pg_pid is None:
            return {}
        times = {}
        try:
            root = psutil.Process(self.pg_pid)
            for p in [root, *root.children()]:
                t = p.cpu_times()
                times[p.pid] = t.user + t.system
        except psutil.Error:
            pass
        return times

    def _snap(self) -> tuple[float, dict[int, float], float, float, float]:
        t = self.server.cpu_times()
        kids = resource.getrusage(resource.RUSAGE_CHILDREN)
        machine = psutil.cpu_times()
        busy = sum(machine) - machine.idle - getattr(machine, "iowait", 0.0)
        return t.user + t.system, self._pg(), kids.ru_utime + kids.ru_stime, time.perf_counter(), busy

    def __enter__(self) -> CpuMeter:  # noqa: PYI034
        self.before = self._snap()
        return self

    def __exit__(self, *exc: object) -> None:
        after = self._snap()
        wall = after[3] - self.before[3]
        pg = sum(v - self.before[1].get(pid, 0.0) for pid, v in after[1].items())
        self.usage = {"server": (after[0] - self.before[0]) / wall * 100, "pg": pg / wall * 100,
                      "client": (after[2] - self.before[2]) / wall * 100}
        # everything else on the machine (other people's test runs skew these figures)
        self.usage["other"] = max(0.0, (after[4] - self.before[4]) / wall * 100 - sum(self.usage.values()))


# ---- the run -----------------------------------------------------------------------------

@dataclass
class Row:
    label: str
    peak: Result
    paced: Result
    warm: Result

    @property
    def answered_2xx(self) -> int:
        return sum(r.requests - r.error_count for r in (self.warm, self.peak, self.paced))


def measure(base: str, target: Target, args: argparse.Namespace, meter: CpuMeter, work: Path) -> Row:
    def peak(seconds: float) -> Result:
        if args.wrk:
            return run_wrk(base, target, seconds, args.connections, args.threads, work)
        return run_client(base, target, seconds, args.connections, None)

    warm = peak(args.warmup)
    with meter:
        best = peak(args.seconds)
    best.cpu = meter.usage
    time.sleep(1)
    with meter:
        paced = run_client(base, target, args.seconds, args.paced_connections, args.rate)
    paced.cpu = meter.usage
    row = Row(target.label, best, paced, warm)
    print(line(row), flush=True)
    return row


def line(row: Row) -> str:
    b, p = row.peak, row.paced
    per_req = {k: b.cpu[k] * 10 / b.rate if b.rate else 0.0 for k in ("server", "pg")}  # ms of CPU
    return (f"{row.label:<34}|{b.rate:7,.0f} |{b.p50:7.1f} |{b.p99:7.1f} |{b.error_count:5} |"
            f"{b.cpu['server']:4.0f}% |{per_req['server']:6.2f} |{per_req['pg']:6.2f} |{b.cpu['client']:4.0f}% |"
            f"{b.cpu['other']:4.0f}% |{p.rate:5.0f} |{p.p50:7.1f} |{p.p99:7.1f} |{p.error_count:5}")


HEADER = (f"{'endpoint':<34}|{'req/s':>7} |{'p50 ms':>7} |{'p99 ms':>7} |{'err':>5} |{'srv':>5} |"
          f"{'srv ms':>6} |{'pg ms':>6} |{'load':>5} |{'other':>5} |{'req/s':>5} |{'p50 ms':>7} |"
          f"{'p99 ms':>7} |{'err':>5}")


def title(rate: float) -> str:
    """Group captions above HEADER's columns: max throughput | CPU | open loop."""
    bars = [i for i, ch in enumerate(HEADER) if ch == "|"]
    groups = [(bars[0], bars[4], "max throughput"), (bars[4], bars[9], "CPU: % of a core, ms/request"),
              (bars[9], len(HEADER), f"open loop at {rate:.0f} req/s")]
    return " " * bars[0] + "".join("|" + caption.center(end - start - 1) for start, end, caption in groups)


def revision(tree: Path) -> str:
    """Which code is measured: the commit and how many files differ from it (read-only git)."""
    try:
        head = subprocess.run(["git", "-C", str(tree), "rev-parse", "--short", "HEAD"],
                              capture_output=True, text=True, check=True).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(tree), "--no-optional-locks", "status", "--porcelain",
                                "--untracked-files=no"], capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return f"{tree} (not a git checkout)"
    changed = len(dirty.splitlines())
    return f"{tree} at {head}" + (f" with {changed} modified files" if changed else "")


def write_paths(work: Path, name: str, paths: list[str]) -> Path:
    path = work / f"{name}.txt"
    path.write_text("\n".join(paths) + "\n")
    return path


async def bench(args: argparse.Namespace, work: Path) -> bool:
    if (busy := psutil.cpu_percent(interval=1.0)) > 20:
        print(f"note: the machine was {busy:.0f}% busy before start; other work skews these figures")
    print(f"gateway code: {revision(args.tree or ROOT)}")
    print(f"load generator: {'wrk' if args.wrk else 'aiohttp client'} ({args.connections} connections) "
          f"for max req/s; open-loop aiohttp client at {args.rate:.0f} req/s; {os.cpu_count()} CPUs")
    if not args.wrk:
        print("note: without wrk the Python client may be what limits the bare rate (its ratio is then "
              "flattering); `apt-get install wrk`")
    data_dir, log_path = work / "data", work / "gateway.log"
    gateway, port = start_gateway(data_dir, log_path, args.tree)
    bare = None
    try:
        dsn = database_dsn(data_dir)
        started = time.perf_counter()
        ids = await load_tickets(dsn, args.tickets)
        print(f"loaded {len(ids):,} tickets (with a comment and an audit entry each) and ANALYZEd "
              f"in {time.perf_counter() - started:.1f}s", flush=True)
        token = admin_token(data_dir, args.tree)
        bare, bare_port = start_bare(dsn, args.pool_size)
        pid_file = data_dir / "pg" / "postmaster.pid"
        pg_pid = int(pid_file.read_text().split()[0]) if pid_file.exists() else None
        gw = f"http://127.0.0.1:{port}"
        targets = [
            (f"http://127.0.0.1:{bare_port}", bare.pid,
             Target("bare aiohttp+asyncpg GET by id", write_paths(work, "bare", [f"/tickets/{i}" for i in ids]))),
            (gw, gateway.pid, Target("GET /tickets/{id}",
                                     write_paths(work, "show", [f"/api/v1/tickets/{i}" for i in ids]), token=token)),
            (gw, gateway.pid, Target("GET /tickets?status=open&limit=50",
                                     write_paths(work, "list", ["/api/v1/tickets?status=open&limit=50"]), token=token)),
            (gw, gateway.pid, Target("POST /tickets/{id}/comments",
                                     write_paths(work, "comment", [f"/api/v1/tickets/{i}/comments" for i in ids]),
                                     method="POST", body=json.dumps(COMMENT), token=token)),
        ]
        print("\n" + title(args.rate))
        print(HEADER, flush=True)
        rows = [measure(base, target, args, CpuMeter(pid, pg_pid), work) for base, pid, target in targets]
        db = await asyncpg.connect(dsn)
        written = await db.fetchrow(
            "SELECT (SELECT count(*) FROM ticket_comments WHERE body = $1) AS comments,"
            " (SELECT count(*) FROM outbox_events WHERE topic = 'notifications.ticket.commented') AS events,"
            " (SELECT count(*) FROM ticket_audit_logs WHERE action = 'comment') AS audits,"
            # the mails the (default) comment triggers asked for, one event each
            " (SELECT count(*) FROM outbox_events WHERE topic = 'notifications.ticket.notification') AS notifications",
            COMMENT["body"])
        await db.close()
    finally:
        if bare is not None:
            bare.terminate()
            bare.wait()
        ok_exit = stop_gateway(gateway, data_dir)
    return summary(args, rows, dict(written), log_path, ok_exit)


def summary(args: argparse.Namespace, rows: list[Row], written: dict, log_path: Path, ok_exit: bool) -> bool:
    bare, show, *_ = rows
    problems = log_problems(log_path)
    print("\n=== summary ===")
    print(title(args.rate))
    print(HEADER)
    for row in rows:
        print(line(row))
    print("CPU columns, max-throughput phase: srv = the server process, pg = PostgreSQL, load = the load "
          "generator, other = everything else on the machine (other people's work skews the figures)")
    ratio = show.peak.rate / bare.peak.rate if bare.peak.rate else 0.0
    ok_ratio = ratio >= TARGET_RATIO
    slow = [r.label for r in rows[1:] if r.paced.p99 >= TARGET_P99_MS]
    errors = [r.label for r in rows if r.peak.error_count or r.paced.error_count]
    print(f"GET /tickets/{{id}} / bare: {show.peak.rate:,.0f} / {bare.peak.rate:,.0f} = {ratio:.0%} "
          f"(target >= {TARGET_RATIO:.0%}): {'PASS' if ok_ratio else 'FAIL'}")
    print(f"p99 at {args.rate:.0f} req/s < {TARGET_P99_MS:.0f} ms for all three: "
          f"{'PASS' if not slow else 'FAIL (' + ', '.join(slow) + ')'}")
    print(f"non-2xx or failed requests: {'none' if not errors else 'FAIL'}")
    for r in rows:
        for phase, result in (("max", r.peak), (f"@{args.rate:.0f}", r.paced)):
            if result.errors:
                print(f"    {r.label} ({phase}): {result.errors}")
    extra = written["comments"] - rows[3].answered_2xx
    print(f"POST comments: {rows[3].answered_2xx} answered 2xx (with warm-up); rows written: "
          f"{written['comments']} comments, {written['audits']} audit entries, {written['events']} "
          f"outbox events, {written['notifications']} trigger notifications" + (f" ({extra} more: requests whose client had gone, at the end of a "
                             "phase or after a client timeout)" if extra > 0 else ""))
    print(f"gateway SIGTERM exit: {'PASS (0, PostgreSQL stopped)' if ok_exit else 'FAIL'}; "
          f"log problems: {sum(problems.values()) or 'none'}")
    for what, count in problems.most_common(10):
        print(f"    {count:5} x {what[:180]}")
    return ok_ratio and not slow and not errors and ok_exit


def log_problems(log_path: Path) -> Counter[str]:
    """ERROR/WARNING records of the gateway log, by message and (for tracebacks) final line."""
    found: Counter[str] = Counter()
    record: str | None = None
    for text in log_path.read_text(errors="replace").splitlines() + ["0000-00-00 end"]:
        if text[:4].isdigit() and text[4:5] == "-":  # a new log record
            if record is not None:
                found[record] += 1
            record = None
            if " ERROR " in text or " WARNING " in text:
                # drop the timestamp and what varies per request (the path)
                record = text.split(" ", 2)[-1].split(" /", 1)[0]
        elif record is not None and text and not text.startswith((" ", "Traceback")):
            record = f"{record} -> {text}"  # the exception line ends the traceback
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tickets", type=int, default=100_000)
    parser.add_argument("--connections", type=int, default=32, help="max-throughput phase")
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    parser.add_argument("--seconds", type=float, default=10.0, help="per phase and endpoint")
    parser.add_argument("--warmup", type=float, default=2.0)
    parser.add_argument("--rate", type=float, default=300.0, help="open-loop phase, req/s")
    parser.add_argument("--paced-connections", type=int, default=64, help="open-loop client's pool")
    parser.add_argument("--pool-size", type=int, default=10,
                        help="bare server's asyncpg pool (min; max twice), like HELPDESK_DB_POOL_SIZE")
    parser.add_argument("--no-wrk", dest="wrk", action="store_false", help="aiohttp client even if wrk exists")
    parser.add_argument("--tree", type=Path, help="run the gateway from this source tree (a patched copy)")
    parser.add_argument("--keep", action="store_true", help="keep the data dir and gateway log")
    parser.add_argument("--bare-server", nargs=2, metavar=("PORT", "DSN"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.bare_server:
        bare_server(int(args.bare_server[0]), args.bare_server[1], args.pool_size)
        return 0
    args.wrk = args.wrk and shutil.which("wrk") is not None
    args.tree = args.tree.resolve() if args.tree else None
    return run_in_work_dir("hd-api-bench-", args.keep, lambda work: bench(args, work))


if __name__ == "__main__":
    sys.exit(main())
