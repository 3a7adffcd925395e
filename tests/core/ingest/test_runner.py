"""The ingest runner against real PostgreSQL: exactly-once claims, retries, quarantine."""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from pathlib import Path

import asyncpg
from sqlalchemy import func, select

from core.attachments.fs import FileStore
from core.audit.models import TicketAuditLog
from core.db import Database, asyncpg_dsn
from core.enums import InboundStatus
from core.events import OutboxEvent
from core.ingest.intake import Intake, Submission
from core.ingest.models import InboundMessage
from core.ingest.pipeline import Pipeline
from core.ingest.runner import MAX_SHARE, MAX_SHARE_AFTER, MIN_SHARE, IngestRunner
from core.metrics import Metrics
from core.tickets.models import Ticket

MAILBOXES = {"support@example.com": "Support"}


def raw_mail(subject: str, message_id: str, attachment: bool = False) -> bytes:
    head = f"From: runner@customer.test\r\nTo: support@example.com\r\nSubject: {subject}\r\nMessage-ID: <{message_id}>\r\n"
    if not attachment:
        return (head + "\r\nbody\r\n").encode()
    return (
        head + 'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="B"\r\n\r\n'
        "--B\r\nContent-Type: text/plain\r\n\r\nbody\r\n"
        "--B\r\nContent-Type: application/pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\n\r\n%PDF\r\n--B--\r\n"
    ).encode()


async def submit_all(db: Database, raws: list[bytes]) -> list[uuid.UUID]:
    intake = Intake(db)
    await intake.start()
    try:
        return list(await asyncio.gather(*(
            intake.submit(Submission(mail_from="runner@customer.test", rcpt_tos=["support@example.com"], raw=r))
            for r in raws
        )))
    finally:
        await intake.stop()


def runner(db: Database, store_root: Path, **options: object) -> IngestRunner:
    pipeline = Pipeline(mailboxes=MAILBOXES, store=FileStore(store_root))
    return IngestRunner(db, pipeline, Metrics(), **options)  # type: ignore[arg-type]


async def rows(db: Database, ids: list[uuid.UUID]) -> list[InboundMessage]:
    async with db.unit_of_work() as session:
        return list(await session.scalars(select(InboundMessage).where(InboundMessage.id.in_(ids))))


async def test_competing_runners_process_every_row_exactly_once(db: Database, database_url: str, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    ids = await submit_all(db, [raw_mail(f"race {tag} {i}", f"race-{tag}-{i}@x") for i in range(60)])
    other_db = Database(database_url, pool_size=3)  # a second "process": its own pool
    try:
        counts = await asyncio.gather(runner(db, tmp_path).drain(), runner(other_db, tmp_path).drain(),
                                      runner(db, tmp_path).drain())
    finally:
        await other_db.dispose()
    found = await rows(db, ids)
    assert {r.status for r in found} == {InboundStatus.processed}
    assert len({r.ticket_id for r in found}) == 60
    assert sum(counts) >= 60
    async with db.unit_of_work() as session:
        tickets = await session.scalar(select(func.count()).select_from(Ticket).where(Ticket.subject.like(f"race {tag} %")))
    assert tickets == 60


async def test_simultaneous_duplicates_make_one_ticket(db: Database, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    raw = raw_mail(f"dup {tag}", f"dup-{tag}@x")
    ids = await submit_all(db, [raw] * 4)
    await asyncio.gather(*(runner(db, tmp_path).drain() for _ in range(3)))
    found = await rows(db, ids)
    assert sorted(r.status.value for r in found) == ["duplicate"] * 3 + ["processed"]
    assert len({r.ticket_id for r in found}) == 1


async def test_a_failure_of_ours_is_retried_with_backoff_then_quarantined(db: Database, tmp_path: Path) -> None:
    tag = uuid.uuid4().hex[:8]
    [inbound_id] = await submit_all(db, [raw_mail(f"fail {tag}", f"fail-{tag}@x", attachment=True)])
    broken_root = tmp_path / "not-a-directory"
    broken_root.write_text("attachments cannot be stored under a file")

    flaky = runner(db, broken_root, max_attempts=2)
    assert await flaky.process_one()
    [row] = await rows(db, [inbound_id])
    assert row.status is InboundStatus.pending and row.attempts == 1
    assert row.retry_at is not None and "Error" in row.last_error
    assert not await flaky.process_one()  # backing off: not claimed again yet

    async with db.unit_of_work() as session:
        stored = await session.get(InboundMessage, inbound_id)
        stored.retry_at = None  # the backoff has passed
    assert await flaky.process_one()
    [row] = await rows(db, [inbound_id])
    assert row.status is InboundStatus.quarantined
    assert row.reason.startswith("could not be processed after 2 attempts")
    async with db.unit_of_work() as session:
        half_made = await session.scalar(select(func.count()).select_from(Ticket).where(Ticket.subject == f"fail {tag}"))
    assert half_made == 0  # the savepoint undid the ticket each time


async def test_a_flood_of_mail_delays_tickets_but_cannot_stop_them(db: Database, tmp_path: Path) -> None:
    """While `defer_while` holds (mail arriving faster than tickets are made), the runner
    steps aside, but only for part of the time: here it holds for ever, and still every
    message becomes a ticket."""
    tag = uuid.uuid4().hex[:8]
    ids = await submit_all(db, [raw_mail(f"flood {tag} {i}", f"flood-{tag}-{i}@x") for i in range(40)])
    asked = 0

    def flooded() -> bool:
        nonlocal asked
        asked += 1
        return True

    flood_runner = runner(db, tmp_path / "att", workers=1, poll_seconds=0.05, defer_while=flooded)
    await flood_runner.start()
    try:
        # fresh mail gets 5% of the time: the wait after a batch is 19 times the batch, which a
        # loaded machine stretches; the loop ends as soon as every message is a ticket
        for _ in range(2400):
            if all(r.status is InboundStatus.processed for r in await rows(db, ids)):
                break
            await asyncio.sleep(0.05)
        # while still running (stopping ends any wait)
        assert [r.status for r in await rows(db, ids)] == [InboundStatus.processed] * len(ids)
    finally:
        await flood_runner.stop()
    assert asked > 0  # it did consider stepping aside


async def test_the_longer_mail_has_waited_the_larger_the_share_tickets_take_of_a_flood(
    db: Database, tmp_path: Path,
) -> None:
    """A burst is accepted first and becomes tickets right after; but mail that has waited
    long takes more of the time from the senders, so a flood that lasts cannot hold tickets
    back for ever."""
    tag = uuid.uuid4().hex[:8]
    ingest = runner(db, tmp_path)
    assert ingest.share == MIN_SHARE  # nothing claimed yet
    [old] = await submit_all(db, [raw_mail(f"waited {tag}", f"waited-{tag}@x")])
    async with db.unit_of_work() as session:
        stored = await session.get(InboundMessage, old)
        stored.received_at -= timedelta(seconds=MAX_SHARE_AFTER)
    assert await ingest.process_one()
    assert ingest.share == MAX_SHARE
    await submit_all(db, [raw_mail(f"fresh {tag}", f"fresh-{tag}@x")])
    assert await ingest.process_one()
    assert MIN_SHARE <= ingest.share < (MIN_SHARE + MAX_SHARE) / 2


async def test_a_stop_that_comes_during_a_batch_ends_the_runner_at_once(
    db: Database, database_url: str, tmp_path: Path,
) -> None:
    """The wake-up of `stop()` (or of new mail) that arrives while a batch is being claimed
    is kept: the runner does not then sit out its poll interval (here 600 s)."""
    ingest = runner(db, tmp_path, workers=1, poll_seconds=600)
    blocker = await asyncpg.connect(asyncpg_dsn(database_url))
    try:
        await blocker.execute("BEGIN; LOCK TABLE inbound_messages IN ACCESS EXCLUSIVE MODE")
        await ingest.start()
        while not await blocker.fetchval(  # the runner's claim waits on the lock
            "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'inbound_messages'::regclass"
        ):
            await asyncio.sleep(0.05)
        stopping = asyncio.create_task(ingest.stop())
        await asyncio.sleep(0)  # one turn of the loop: the task runs first and asks the runner to stop
        await blocker.execute("ROLLBACK")
        await asyncio.wait_for(stopping, 60)
    finally:
        await blocker.close()


async def test_mail_arriving_as_a_stream_is_taken_a_few_messages_at_a_time(db: Database, tmp_path: Path) -> None:
    """A runner without a backlog lingers before it claims: the second message, committed
    while the runner waits, goes in the first one's batch (one transaction, one
    `processed_at`). Without the linger the first is claimed alone the moment it commits."""
    ingest = runner(db, tmp_path, workers=1, poll_seconds=600, linger=1.0)
    intake = Intake(db, on_commit=ingest.wake)
    await intake.start()
    await ingest.start()
    tag = uuid.uuid4().hex[:8]
    try:
        ids = []
        for i in range(2):
            ids.append(await intake.submit(Submission(
                mail_from="runner@customer.test", rcpt_tos=["support@example.com"],
                raw=raw_mail(f"stream {tag} {i}", f"stream-{tag}-{i}@x"),
            )))
            await asyncio.sleep(0.2)
        for _ in range(200):
            done = await rows(db, ids)
            if all(r.status is InboundStatus.processed for r in done):
                break
            await asyncio.sleep(0.05)
        assert [r.status for r in done] == [InboundStatus.processed] * 2
        assert done[0].processed_at == done[1].processed_at  # one batch
    finally:
        await ingest.stop()
        await intake.stop()


async def test_a_stop_ends_a_linger_at_once(db: Database, tmp_path: Path) -> None:
    ingest = runner(db, tmp_path, workers=1, poll_seconds=600, linger=600.0)
    await ingest.start()
    await asyncio.sleep(0.1)  # lingering before its first claim
    await asyncio.wait_for(ingest.stop(), 30)


async def _written_for(db: Database, subject: str) -> tuple[list[str], list[str]]:
    """The audit actions (in the log's order) and outbox topics of the ticket with this subject."""
    async with db.unit_of_work() as session:
        ticket_id = await session.scalar(select(Ticket.id).where(Ticket.subject == subject))
        if ticket_id is None:
            return [], []
        actions = list(await session.scalars(
            select(TicketAuditLog.action).where(TicketAuditLog.ticket_id == ticket_id)
            .order_by(TicketAuditLog.created_at, TicketAuditLog.id)))
        topics = sorted(await session.scalars(select(OutboxEvent.topic).where(OutboxEvent.key == str(ticket_id))))
    return actions, topics


async def test_a_batch_redone_message_by_message_writes_each_audit_and_event_once(db: Database, tmp_path: Path) -> None:
    """A batch's audit entries and events are written at its end (core/write_buffer.py): when the
    batch fails and is redone one message at a time, the failed message leaves none, and the
    others have theirs once, in the same order as a ticket made on its own."""
    tag = uuid.uuid4().hex[:8]
    [control] = await submit_all(db, [raw_mail(f"alone {tag}", f"alone-{tag}@x")])
    await runner(db, tmp_path).drain()
    expected = await _written_for(db, f"alone {tag}")
    assert expected[0] and expected[1]

    broken_root = tmp_path / "not-a-directory"
    broken_root.write_text("attachments cannot be stored under a file")
    ids = await submit_all(db, [
        raw_mail(f"batch {tag} {i}", f"batch-{tag}-{i}@x", attachment=(i == 2)) for i in range(4)
    ])
    await runner(db, broken_root, max_attempts=5).process_batch()
    found = {r.id: r for r in await rows(db, ids)}
    assert [found[i].status for i in ids] == [InboundStatus.processed] * 2 + [InboundStatus.pending, InboundStatus.processed]
    for i in (0, 1, 3):
        assert await _written_for(db, f"batch {tag} {i}") == expected
    assert await _written_for(db, f"batch {tag} 2") == ([], [])
    async with db.unit_of_work() as session:
        stray = await session.scalar(select(func.count()).select_from(OutboxEvent).where(
            OutboxEvent.payload["ticket"]["subject"].astext == f"batch {tag} 2"))
    assert stray == 0
    assert control not in found
