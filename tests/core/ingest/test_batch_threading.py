"""Threading inside one batch: what the batch reads up front (ThreadLookups) must answer as the
tables would after each message, including for what the batch itself wrote."""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy import select

from core.attachments.fs import FileStore
from core.db import Database
from core.enums import InboundStatus
from core.ingest.models import InboundMessage
from core.ingest.pipeline import Pipeline
from core.ingest.runner import IngestRunner
from core.mail.tokens import make_token, reply_address
from core.metrics import Metrics
from core.secrets import REPLY_TOKEN_SECRET, server_secret
from core.tickets.models import Ticket
from tests.core.ingest.test_runner import MAILBOXES, rows, submit_all


def mail(sender: str, subject: str, message_id: str, *, to: str = "support@example.com",
         in_reply_to: str | None = None) -> bytes:
    head = f"From: {sender}\r\nTo: {to}\r\nSubject: {subject}\r\nMessage-ID: <{message_id}>\r\n"
    if in_reply_to:
        head += f"In-Reply-To: <{in_reply_to}>\r\nReferences: <{in_reply_to}>\r\n"
    return (head + "\r\nThe printer jams again.\r\n").encode()


def one_batch_runner(db: Database, tmp_path: Path, **pipeline: int) -> IngestRunner:
    return IngestRunner(
        db, Pipeline(mailboxes=MAILBOXES, store=FileStore(tmp_path), **pipeline),  # type: ignore[arg-type]
        Metrics(), workers=1, batch=50,
    )


async def submit(db: Database, raws: list[bytes], rcpt_tos: list[str] | None = None) -> list[uuid.UUID]:
    """Stored in this order, so one batch claims them in this order."""
    ids = []
    for k, raw in enumerate(raws):
        [inbound_id] = await submit_all(db, [raw]) if rcpt_tos is None else await _submit_to(db, raw, rcpt_tos[k])
        ids.append(inbound_id)
    return ids


async def _submit_to(db: Database, raw: bytes, rcpt: str) -> list[uuid.UUID]:
    from core.ingest.intake import Intake, Submission

    intake = Intake(db)
    await intake.start()
    try:
        return [await intake.submit(Submission(mail_from="x@customer.test", rcpt_tos=[rcpt], raw=raw))]
    finally:
        await intake.stop()


async def test_a_reply_to_mail_of_the_same_batch_joins_its_ticket(db: Database, tmp_path: Path) -> None:
    """The first message's Message-ID is written by the batch itself, after the batch's reads:
    the reply that quotes it must still find the ticket it made."""
    tag = uuid.uuid4().hex[:8]
    sender = f"same-batch-{tag}@customer.test"
    ids = await submit(db, [
        mail(sender, f"printer {tag}", f"first-{tag}@customer.test"),
        mail(sender, f"Re: printer {tag}", f"second-{tag}@customer.test", in_reply_to=f"first-{tag}@customer.test"),
    ])
    assert await one_batch_runner(db, tmp_path).process_batch() == 2  # both in one batch
    first, second = sorted(await rows(db, ids), key=lambda r: r.received_at)
    assert first.matched_rule == "new_ticket"
    assert (second.status, second.matched_rule, second.ticket_id) == (InboundStatus.processed, "message_id", first.ticket_id)


async def test_the_flood_budget_counts_the_replies_of_the_same_batch(db: Database, tmp_path: Path) -> None:
    """Budget 3 mails an hour: the ticket's first mail and two replies pass; in one batch with
    them, the third and fourth reply are quarantined."""
    tag = uuid.uuid4().hex[:8]
    sender = f"flood-{tag}@customer.test"
    [first] = await submit(db, [mail(sender, f"flood {tag}", f"flood-{tag}@customer.test")])
    assert await one_batch_runner(db, tmp_path, ticket_inbound_per_hour=3).process_batch() == 1
    replies = await submit(db, [
        mail(sender, f"Re: flood {tag}", f"flood-{tag}-{i}@customer.test", in_reply_to=f"flood-{tag}@customer.test")
        for i in range(4)
    ])
    assert await one_batch_runner(db, tmp_path, ticket_inbound_per_hour=3).process_batch() == 4
    found = sorted(await rows(db, replies), key=lambda r: r.received_at)
    assert [r.status for r in found] == [InboundStatus.processed] * 2 + [InboundStatus.quarantined] * 2
    assert "over 3 messages in an hour" in (found[2].reason or "")
    [origin] = await rows(db, [first])
    assert {r.ticket_id for r in found[:2]} == {origin.ticket_id}


async def test_replies_to_several_tickets_by_token_and_by_message_id_in_one_batch(
    db: Database, tmp_path: Path,
) -> None:
    """Each reply of a mixed batch reaches its own ticket: the batch's reads are keyed right."""
    tag = uuid.uuid4().hex[:8]
    senders = [f"mixed-{tag}-{i}@customer.test" for i in range(4)]
    originals = await submit(db, [mail(s, f"case {tag} {i}", f"case-{tag}-{i}@customer.test") for i, s in enumerate(senders)])
    assert await one_batch_runner(db, tmp_path).process_batch() == 4
    made = {r.ticket_id: r for r in await rows(db, originals)}
    async with db.unit_of_work() as session:
        secret = await server_secret(session, REPLY_TOKEN_SECRET)
        by_subject = {
            t.subject: t for t in await session.scalars(select(Ticket).where(Ticket.id.in_(list(made))))
        }
    replies, rcpts = [], []
    for i, sender in enumerate(senders):
        ticket = by_subject[f"case {tag} {i}"]
        if i % 2:  # to the Reply-To of our acknowledgement
            to = reply_address("support@example.com", make_token(
                secret, ticket_number=ticket.number, ticket_id=ticket.id, address=sender))
            replies.append(mail(sender, "Re: your ticket", f"re-{tag}-{i}@customer.test", to=to))
        else:  # quoting the mail that made it
            to = "support@example.com"
            replies.append(mail(sender, "Re: your ticket", f"re-{tag}-{i}@customer.test",
                                in_reply_to=f"case-{tag}-{i}@customer.test"))
        rcpts.append(to)
    ids = await submit(db, list(reversed(replies)), list(reversed(rcpts)))
    assert await one_batch_runner(db, tmp_path).process_batch() == 4
    found: dict[uuid.UUID, InboundMessage] = {r.id: r for r in await rows(db, ids)}
    for inbound_id, i in zip(ids, reversed(range(4)), strict=True):
        row = found[inbound_id]
        assert row.status is InboundStatus.processed, row.reason
        assert row.matched_rule == ("token" if i % 2 else "message_id")
        assert row.ticket_id == by_subject[f"case {tag} {i}"].id
