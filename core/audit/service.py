from __future__ import annotations

import uuid
from datetime import datetime
from enum import Enum
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from core.audit.models import TicketAuditLog
from core.enums import AuthorType
from core.write_buffer import collecting


def plain(value: Any) -> Any:
    """A field value as it is written into an audit entry (JSON)."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, (uuid.UUID, datetime)):
        return str(value)
    return value


class AuditService:
    def record(
        self,
        session: AsyncSession,
        *,
        ticket_id: uuid.UUID,
        actor_type: AuthorType,
        actor_id: uuid.UUID | None,
        action: str,
        changes: dict[str, Any] | None = None,
        via: str | None = None,
    ) -> TicketAuditLog:
        entry = TicketAuditLog(
            id=uuid.uuid4(), ticket_id=ticket_id, actor_type=actor_type, actor_id=actor_id,
            action=action, changes=changes or {}, via=via,
        )
        if (buffer := collecting(session)) is not None:
            buffer.audits.append(entry)
        else:
            session.add(entry)
        return entry


audit_service = AuditService()
