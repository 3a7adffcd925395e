"""Copy every attachment's content from one store to another, resumably.

Content already in the target is skipped (the stores are content-addressed), so an
interrupted run simply starts again. The source is left as it is: switch
`HELPDESK_ATTACHMENT_STORE` once the copy is complete, then remove the old store at leisure."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import select

from core.attachments import AttachmentStore, BlobMissing, read_all
from core.db import Database
from core.tickets.models import TicketAttachment

log = logging.getLogger(__name__)


@dataclass
class MigrationReport:
    total: int = 0
    copied: int = 0
    present: int = 0  # already in the target (an earlier run, or deduplicated)
    missing: list[str] = field(default_factory=list)  # referenced but not in the source
    corrupt: list[str] = field(default_factory=list)  # content does not match its digest


async def migrate_blobs(
    db: Database, source: AttachmentStore, target: AttachmentStore,
    progress: Callable[[int, int], None] = lambda done, total: None,
) -> MigrationReport:
    async with db.read_only() as session:
        digests = list(await session.scalars(
            select(TicketAttachment.sha256).distinct().order_by(TicketAttachment.sha256)
        ))
    report = MigrationReport(total=len(digests))
    progress(0, report.total)
    for done, digest in enumerate(digests, 1):
        await _copy_one(digest, source, target, report)
        progress(done, report.total)
    return report


async def _copy_one(digest: str, source: AttachmentStore, target: AttachmentStore, report: MigrationReport) -> None:
    if await target.exists(digest):
        report.present += 1
        return
    try:
        data = await read_all(source, digest)  # one attachment at a time: at most 25 MB
    except BlobMissing:
        log.warning("attachment %s is referenced but not in the %s store", digest, source.kind)
        report.missing.append(digest)
        return
    if hashlib.sha256(data).hexdigest() != digest:
        log.warning("attachment %s in the %s store does not match its digest", digest, source.kind)
        report.corrupt.append(digest)
        return
    await target.put(data)
    report.copied += 1
