"""Mail imported from an old mailbox: it keeps its own dates and, unless asked, tells no one.

`helpdesk import-mbox` / `import-maildir` submit with source `import` (quiet) or `mbox` /
`maildir` (`--notify`: acknowledgements and notifications as for mail arriving now)."""

from __future__ import annotations

from datetime import datetime, timezone
from email.parser import BytesHeaderParser
from email.utils import parsedate_to_datetime

from core.ingest.models import InboundMessage

QUIET_SOURCE = "import"
IMPORT_SOURCES = frozenset({QUIET_SOURCE, "mbox", "maildir"})
# the mailer sends nothing for events of this kind (as for auto-replies and bulk mail)
QUIET_KIND = "imported"


def is_quiet(inbound: InboundMessage) -> bool:
    return inbound.source == QUIET_SOURCE


def original_date(inbound: InboundMessage) -> datetime | None:
    """The `Date:` of an imported message (never in the future); None for live mail or no date."""
    if inbound.source not in IMPORT_SOURCES:
        return None
    header = BytesHeaderParser().parsebytes(inbound.raw, headersonly=True).get("Date")
    if not header:
        return None
    try:
        when = parsedate_to_datetime(str(header))
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return min(when, datetime.now(timezone.utc))
