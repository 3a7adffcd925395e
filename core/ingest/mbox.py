"""`helpdesk import-mbox` / `import-maildir`: an old mailbox through the normal ingest path.

Each message is stored as if it had arrived by SMTP (so a second import finds it already
received), then processed like any other; imported mail keeps its own date and, unless the
operator asks for `--notify`, sends no acknowledgement or notification (core/ingest/imported.py)."""

from __future__ import annotations

import mailbox
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select

from core.db import Database
from core.enums import InboundStatus
from core.ingest.imported import QUIET_SOURCE
from core.ingest.intake import Intake, Submission
from core.ingest.models import InboundMessage
from core.ingest.submission import already_received, support_recipients


class NotAMailbox(ValueError):
    """The path is not the kind of mailbox asked for: said in one sentence."""


@dataclass
class ImportReport:
    total: int = 0
    queued: int = 0
    skipped: int = 0  # already received earlier: importing twice adds nothing
    ids: list[uuid.UUID] = field(default_factory=list)


@dataclass
class Outcomes:
    tickets: int = 0
    comments: int = 0
    duplicates: int = 0
    quarantined: int = 0
    dropped: int = 0
    pending: int = 0  # not processed yet (a running worker will)


def open_mbox(path: Path) -> tuple[int, Iterator[bytes]]:
    if not path.is_file():
        raise NotAMailbox(f"no such mbox file: {path}")
    with path.open("rb") as handle:
        start = handle.read(5)
    if start != b"From ":
        what = "is empty" if not start else 'does not start with a "From " line'
        raise NotAMailbox(f"{path} is not an mbox file (it {what})")
    box = mailbox.mbox(path, create=False)
    keys = list(box.keys())
    return len(keys), (box.get_bytes(k) for k in keys)


def open_maildir(path: Path) -> tuple[int, Iterator[bytes]]:
    if not path.is_dir():
        raise NotAMailbox(f"no such maildir: {path}")
    if not all((path / sub).is_dir() for sub in ("cur", "new", "tmp")):
        raise NotAMailbox(f"{path} is not a maildir (it needs cur/, new/ and tmp/ folders)")
    box = mailbox.Maildir(path, factory=None, create=False)
    keys = sorted(box.keys())  # maildir names start with the delivery time: oldest first
    return len(keys), (box.get_bytes(k) for k in keys)


async def import_messages(
    db: Database,
    intake: Intake,
    messages: Iterator[bytes],
    total: int,
    *,
    mailboxes: dict[str, str],
    source: str = QUIET_SOURCE,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> ImportReport:
    report = ImportReport(total=total)
    default_rcpt = next(iter(mailboxes))
    for done, raw in enumerate(messages, start=1):
        async with db.unit_of_work() as session:
            seen = await already_received(session, raw)
        if seen:
            report.skipped += 1
        else:
            rcpt = support_recipients(raw, mailboxes) or [default_rcpt]
            report.ids.append(await intake.submit(Submission(mail_from="", rcpt_tos=rcpt, raw=raw, source=source)))
            report.queued += 1
        progress(done, report.total)
    return report


async def outcomes_of(db: Database, ids: list[uuid.UUID]) -> Outcomes:
    """What became of the imported messages: tickets, comments, duplicates, quarantined..."""
    result = Outcomes()
    if not ids:
        return result
    async with db.unit_of_work() as session:
        rows = await session.execute(
            select(InboundMessage.status, InboundMessage.matched_rule, func.count())
            .where(InboundMessage.id.in_(ids)).group_by(InboundMessage.status, InboundMessage.matched_rule)
        )
        for status, rule, count in rows:
            if status is InboundStatus.processed:
                if rule == "new_ticket":
                    result.tickets += count
                else:
                    result.comments += count
            elif status is InboundStatus.duplicate:
                result.duplicates += count
            elif status is InboundStatus.quarantined:
                result.quarantined += count
            elif status is InboundStatus.dropped:
                result.dropped += count
            else:
                result.pending += count
    return result
