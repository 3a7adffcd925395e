"""Files uploaded with an API comment: stored content-addressed, recorded on the comment."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from core.attachments import AttachmentStore
from core.mail.names import sanitize_filename
from core.tickets.models import TicketComment
from core.tickets.service import ticket_service


@dataclass(frozen=True)
class Upload:
    filename: str
    content_type: str
    data: bytes


async def store_uploads(
    store: AttachmentStore, session: AsyncSession, comment: TicketComment, uploads: Sequence[Upload],
) -> None:
    for upload in uploads:
        digest = await store.put(upload.data)
        ticket_service.add_attachment(
            session, comment=comment, filename=sanitize_filename(upload.filename, upload.content_type),
            content_type=upload.content_type, size=len(upload.data), sha256=digest, content_id=None, inline=False,
        )
    if uploads:
        await session.flush()
