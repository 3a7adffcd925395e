"""Raw messages that arrive other than over SMTP (HTTP API, mbox import): to which support address?"""

from __future__ import annotations

import hashlib
from email.parser import BytesHeaderParser
from email.policy import default as default_policy

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from core.ingest.intake import header_message_id
from core.ingest.models import InboundMessage
from core.mail.addresses import support_mailbox


def support_recipients(raw: bytes, mailboxes: dict[str, str]) -> list[str]:
    """The support addresses among the message's own recipient headers."""
    try:
        headers = BytesHeaderParser(policy=default_policy).parsebytes(raw)
        found: list[str] = []
        for name in ("Delivered-To", "X-Original-To", "To", "Cc"):
            for header in headers.get_all(name) or []:
                addresses = getattr(header, "addresses", ())
                for address in addresses:
                    spec = address.addr_spec
                    if spec and support_mailbox(spec, mailboxes) and spec not in found:
                        found.append(spec)
        return found
    except Exception:
        return []


async def already_received(session: AsyncSession, raw: bytes) -> bool:
    """The same bytes with the same Message-ID are already stored (imports are repeatable)."""
    query = select(InboundMessage.id).where(InboundMessage.sha256 == hashlib.sha256(raw).hexdigest())
    message_id = header_message_id(raw)
    if message_id is not None:
        query = query.where(InboundMessage.message_id == message_id)
    return await session.scalar(query.limit(1)) is not None
