"""The mailer alone (no SMTP front, no ingest, no Kafka): acknowledgements planned, composed and
sent to a relay in another process, timed in the source tree of the working directory: Python
CPU and statements per notification (through SQLAlchemy or on the driver itself; BEGIN
and COMMIT not counted).

    .venv/bin/python bench/mailer_path.py [-n 2000] [--batch 20]

Mail is stored and turned into tickets first (as bench/ingest_path.py does, each from its own
sender), which writes their events to the outbox; the events are then handed to the mailer in
batches of `--batch`, as the Kafka consumer hands it what one fetch returns (at 100 msg/s the
relay publishes about twenty events every 0.2 s). The relay is an aiosmtpd sink in its own
process, so its CPU is not counted. To compare a change, run it from the old tree and the new one
in turn, a few times each (the machine may be shared):

    (cd OLD_TREE && /path/to/.venv/bin/python /path/to/bench/mailer_path.py)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy import event, select

sys.path.insert(0, os.getcwd())
sys.path.insert(0, str(Path(__file__).resolve().parent))

from core.bootstrap import bootstrap
from core.config import Settings
from core.db import Database
from core.events import OutboxEvent
from core.ingest.pipeline import Pipeline
from core.ingest.runner import IngestRunner
from core.metrics import Metrics
from core.migrate import upgrade
from outbound.mailer import Mailer
from outbound.transport import transport_from_settings
from tests.support.postgres import create_database, postgres_server

from common import free_port  # bench/, beside this file
from ingest_path import new_mail, store


def sink(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{port}", "-c", "aiosmtpd.handlers.Sink"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )


async def relay_ready(port: int) -> None:
    for _ in range(200):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.close()
            return
        except OSError:
            await asyncio.sleep(0.05)
    raise RuntimeError("the sink relay did not start")


async def events(db: Database, after: int) -> list[dict[str, object]]:
    async with db.read_only() as session:
        rows = await session.scalars(select(OutboxEvent.payload).order_by(OutboxEvent.created_at, OutboxEvent.id))
        return list(rows)[after:]


# statements sent on a connection's asyncpg driver itself (`driver_of`), which SQLAlchemy's
# events do not see; the transactions' BEGIN and COMMIT are left out, as they are there
counting_driver: list[Callable[..., None] | None] = [None]


def _count_driver_statements() -> None:
    for name in ("execute", "fetch", "fetchrow", "fetchval"):
        original = getattr(asyncpg.Connection, name)

        async def counted(self: asyncpg.Connection, query: str, *args: object, _original: Any = original,
                          **kwargs: object) -> object:
            if counting_driver[0] is not None and query.split(None, 1)[0].rstrip(";").upper() not in ("BEGIN", "COMMIT", "ROLLBACK"):
                counting_driver[0](None, None, query)
            return await _original(self, query, *args, **kwargs)

        setattr(asyncpg.Connection, name, counted)


async def main(args: argparse.Namespace) -> None:
    _count_driver_statements()
    port = free_port()
    relay = sink(port)
    try:
        with tempfile.TemporaryDirectory() as tmp, postgres_server(Path(tmp) / "pg") as server:
            url = await create_database(server)
            await upgrade(url)
            settings = Settings(  # type: ignore[call-arg]
                data_dir=Path(tmp), database_url=url, smtp_relay=f"127.0.0.1:{port}", _env_file=None,
                support_addresses="support@example.com=Support",
                # every message comes from one host (loopback): the acknowledgement budget would
                # suppress nearly all of them
                ack_burst=10**6, ack_per_hour=10**6, ack_per_host_burst=10**6, ack_per_host_per_hour=10**6,
            )
            db = Database(url, pool_size=4)
            await relay_ready(port)
            mailer = Mailer(db, settings, transport_from_settings(settings), Metrics())
            try:
                await bootstrap(db, settings)
                runner = IngestRunner(db, Pipeline.from_settings(settings), Metrics(), workers=1)
                run = str(time.time_ns())
                phases = [("warm-up", range(args.n, args.n + 100)), ("notifications", range(args.n))]
                seen = 0
                for label, numbers in phases:
                    await store(db, [new_mail(i, label + run) for i in numbers])
                    await runner.drain()
                    payloads = await events(db, seen)
                    seen += len(payloads)
                    statements: Counter[str] = Counter()

                    def count(_c: object, _cur: object, statement: str, *_rest: object) -> None:
                        statements[" ".join(statement.split())[:100]] += 1

                    for engine in (db.engine, db.read_engine):
                        event.listen(engine.sync_engine, "before_cursor_execute", count)
                    counting_driver[0] = count
                    cpu, wall = time.process_time(), time.perf_counter()
                    for start in range(0, len(payloads), args.batch):
                        await mailer.handle_batch(payloads[start:start + args.batch])
                    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
                    counting_driver[0] = None
                    for engine in (db.engine, db.read_engine):
                        event.remove(engine.sync_engine, "before_cursor_execute", count)
                    sent = len(numbers)
                    print(f"{label:<14} {sent:6} notifications: python CPU {cpu * 1000 / sent:.2f} ms each, "
                          f"{sum(statements.values()) / sent:.2f} statements each, {sent / wall:,.0f}/s "
                          f"(wall, one mailer, batches of {args.batch})", flush=True)
                if args.statements:
                    for text, times in statements.most_common():
                        print(f"{times:6} {text}")
            finally:
                await mailer.stop()
                await db.dispose()
    finally:
        relay.terminate()
        relay.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=20, help="events per handle_batch (one Kafka fetch)")
    parser.add_argument("--statements", action="store_true", help="list the statements of the last phase")
    asyncio.run(main(parser.parse_args()))
