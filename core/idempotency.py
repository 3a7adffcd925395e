"""`Idempotency-Key` on POST: a retried request gets the first response, never a second effect."""

from __future__ import annotations

import hashlib
import uuid
from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, LargeBinary, String, select, text
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from core.models_base import Base


class IdempotencyKey(Base):
    __tablename__ = "idempotency_keys"

    agent_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[int] = mapped_column(Integer)
    content_type: Mapped[str] = mapped_column(String(255))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()"), nullable=False, index=True
    )


def fingerprint(method: str, path: str, query: str, body: bytes) -> str:
    digest = hashlib.sha256()
    for part in (method.encode(), path.encode(), query.encode(), body):
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return digest.hexdigest()


async def lock_and_find(session: AsyncSession, agent_id: uuid.UUID, key: str) -> IdempotencyKey | None:
    """Serialises requests with the same key: the second waits for the first to commit."""
    lock = int.from_bytes(hashlib.sha256(f"{agent_id}|{key}".encode()).digest()[:8], "big", signed=True)
    await session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": lock})
    return await session.scalar(
        select(IdempotencyKey).where(IdempotencyKey.agent_id == agent_id, IdempotencyKey.key == key)
    )
