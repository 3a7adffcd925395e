"""`helpdesk import-mbox`: every message of an mbox through the normal ingest path."""

from __future__ import annotations

import mailbox
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from core.db import Database
from core.ingest.intake import Intake, Submission
from core.ingest.submission import already_received, support_recipients


@dataclass
class ImportReport:
    total: int = 0
    queued: int = 0
    skipped: int = 0  # already received earlier: importing twice adds nothing


async def import_mbox(
    db: Database,
    intake: Intake,
    path: Path,
    *,
    mailboxes: dict[str, str],
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> ImportReport:
    box = mailbox.mbox(path, create=False)
    keys = list(box.keys())
    report = ImportReport(total=len(keys))
    default_rcpt = next(iter(mailboxes))
    for done, key in enumerate(keys, start=1):
        raw = box.get_bytes(key)
        async with db.unit_of_work() as session:
            seen = await already_received(session, raw)
        if seen:
            report.skipped += 1
        else:
            rcpt = support_recipients(raw, mailboxes) or [default_rcpt]
            await intake.submit(Submission(mail_from="", rcpt_tos=rcpt, raw=raw, source="mbox"))
            report.queued += 1
        progress(done, report.total)
    return report
