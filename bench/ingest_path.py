"""Ticket creation and threaded replies through the ingest runner alone (no SMTP, no mailer),
timed in the source tree of the working directory: Python CPU per message and messages/s.

    .venv/bin/python bench/ingest_path.py [-n 2000] [--batch N] [--no-replies]

Mail is stored first through the intake (as the SMTP front stores it), then one runner drains
it: phase 1 new tickets, each from its own sender (as bench/notify.py sends them), phase 2 one
reply to each, as a mail client sends it to our acknowledgement: to its Reply-To (the support
address with the ticket's reply token) with In-Reply-To and References. The database is a fresh embedded PostgreSQL with what
a first start seeds (groups, default triggers). CPU is this process's: PostgreSQL's own work is
not in it. To compare a change, run it from the old tree and the new one in turn, a few times
each (the machine may be shared):

    (cd OLD_TREE && /path/to/.venv/bin/python /path/to/bench/ingest_path.py)
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

sys.path.insert(0, os.getcwd())

from core.bootstrap import bootstrap
from core.config import Settings
from core.db import Database
from core.ingest.intake import Intake, Submission
from core.ingest.pipeline import Pipeline
from core.ingest.runner import IngestRunner
from core.metrics import Metrics
from core.mail.tokens import make_token, reply_address
from core.migrate import upgrade
from core.secrets import REPLY_TOKEN_SECRET, server_secret
from core.tickets.models import Ticket
from tests.support.postgres import create_database, postgres_server

BODY = (
    "Hello,\r\n\r\nThe printer on the third floor prints every page twice and then jams.\r\n"
    "We tried another tray and a new cartridge; it still happens since Monday.\r\n\r\nThanks, {name}\r\n"
)


def new_mail(i: int, run: str) -> bytes:
    return (
        f"From: Customer {i} <customer{i}@customers.example>\r\nTo: support@example.com\r\n"
        f"Subject: Help needed, case {i}\r\nMessage-ID: <new-{i}-{run}@customers.example>\r\n"
        f"Date: Mon, 30 Nov 2026 08:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n" + BODY.format(name=f"Customer {i}")
    ).encode()


def reply_mail(i: int, run: str, to: str) -> bytes:
    original = f"<new-{i}-{run}@customers.example>"
    return (
        f"From: Customer {i} <customer{i}@customers.example>\r\nTo: {to}\r\n"
        f"Subject: Re: Help needed, case {i}\r\nMessage-ID: <reply-{i}-{run}@customers.example>\r\n"
        f"In-Reply-To: {original}\r\nReferences: {original}\r\n"
        f"Date: Mon, 30 Nov 2026 09:00:00 +0000\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
        "It jammed again this morning, page 3 of 10.\r\n\r\n"
        f"On Mon, 30 Nov 2026 at 08:00, Customer {i} wrote:\r\n> " + BODY.format(name="").replace("\r\n", "\r\n> ")
    ).encode()


async def reply_addresses(db: Database, n: int) -> list[str]:
    """Each case's ticket's Reply-To, as our acknowledgement carries it."""
    async with db.unit_of_work() as session:
        secret = await server_secret(session, REPLY_TOKEN_SECRET)
        rows = (await session.execute(select(Ticket.id, Ticket.number, Ticket.subject))).all()
    cases = {int(subject.rpartition(" ")[2]): (ticket_id, number) for ticket_id, number, subject in rows}
    return [
        reply_address("support@example.com", make_token(
            secret, ticket_number=cases[i][1], ticket_id=cases[i][0], address=f"customer{i}@customers.example"))
        for i in range(n)
    ]


async def store(db: Database, raws: list[bytes], rcpt_tos: list[str] | None = None) -> None:
    intake = Intake(db)
    await intake.start()
    try:
        await asyncio.gather(*(
            intake.submit(Submission(mail_from=f"bench{k}@customers.example",
                                     rcpt_tos=[rcpt_tos[k] if rcpt_tos else "support@example.com"], raw=r))
            for k, r in enumerate(raws)
        ))
    finally:
        await intake.stop()


async def phase(label: str, runner: IngestRunner, db: Database, raws: list[bytes],
                rcpt_tos: list[str] | None = None) -> None:
    await store(db, raws, rcpt_tos)
    cpu, wall = time.process_time(), time.perf_counter()
    handled = await runner.drain()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    print(f"{label:<12} {handled:6} messages: python CPU {cpu * 1000 / handled:.2f} ms/message,"
          f" {handled / wall:,.0f} messages/s (wall, one runner)", flush=True)


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as tmp, postgres_server(Path(tmp) / "pg") as server:
        url = await create_database(server)
        await upgrade(url)
        settings = Settings(data_dir=Path(tmp), database_url=url, _env_file=None)  # type: ignore[call-arg]
        db = Database(url, pool_size=4)
        try:
            await bootstrap(db, settings)
            runner = IngestRunner(db, Pipeline.from_settings(settings), Metrics(), workers=1, batch=args.batch)
            run = str(time.time_ns())
            warm = [new_mail(i, "warm" + run) for i in range(args.n, args.n + 100)]
            await store(db, warm)
            await runner.drain()
            await phase("new tickets", runner, db, [new_mail(i, run) for i in range(args.n)])
            if not args.no_replies:
                to = await reply_addresses(db, args.n)
                await phase("replies", runner, db, [reply_mail(i, run, to[i]) for i in range(args.n)], to)
        finally:
            await db.dispose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("--no-replies", action="store_true", help="new tickets only")
    parser.add_argument("--batch", type=int, default=getattr(Settings(), "ingest_batch", 8),
                        help="messages per runner transaction (default: the setting's default)")
    asyncio.run(main(parser.parse_args()))
