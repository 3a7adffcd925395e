"""Threat: a message whose processing kills the worker is retried by every restart, forever.

Starts are committed before the work; a start that ended in neither an outcome nor a recorded
failure was a crash. After `max_attempts` of them the message is quarantined unprocessed.
"""

from __future__ import annotations

import uuid
from pathlib import Path

from core.db import Database
from core.enums import InboundStatus
from tests.core.ingest.test_runner import raw_mail, rows, runner, submit_all


class Crash(Exception):
    """Stands for the process dying: the claiming transaction never commits."""


async def test_message_that_kills_the_worker_is_quarantined_after_max_attempts_crashes(
    db: Database, tmp_path: Path
) -> None:
    tag = uuid.uuid4().hex[:8]
    [inbound_id] = await submit_all(db, [raw_mail(f"killer {tag}", f"killer-{tag}@x")])
    work = runner(db, tmp_path, max_attempts=3)
    for _ in range(3):  # each time: claimed, start counted, then the process dies mid-work
        try:
            async with db.unit_of_work() as session:
                claimed = await work._claim(session, 1, ids=[inbound_id])
                await work._count_starts(claimed)
                raise Crash
        except Crash:
            pass
    [row] = await rows(db, [inbound_id])
    assert row.status is InboundStatus.pending  # nothing recorded on the row itself
    await work.drain()
    [row] = await rows(db, [inbound_id])
    assert row.status is InboundStatus.quarantined and "stopped the ingest worker 3 times" in row.reason
    assert row.ticket_id is None


async def test_fewer_crashes_than_the_maximum_still_process(db: Database, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    [inbound_id] = await submit_all(db, [raw_mail(f"survivor {tag}", f"survivor-{tag}@x")])
    work = runner(db, tmp_path, max_attempts=3)
    try:
        async with db.unit_of_work() as session:
            await work._count_starts(await work._claim(session, 1, ids=[inbound_id]))
            raise Crash
    except Crash:
        pass
    await work.drain()
    [row] = await rows(db, [inbound_id])
    assert row.status is InboundStatus.processed
