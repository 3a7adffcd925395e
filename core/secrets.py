"""Server secrets kept in the database, so every process of a deployment shares them."""

from __future__ import annotations

import secrets
from datetime import datetime

from sqlalchemy import DateTime, LargeBinary, String, select, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from core.models_base import Base

REPLY_TOKEN_SECRET = "reply_token"


class ServerSecret(Base):
    __tablename__ = "server_secrets"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()"), nullable=False
    )


async def server_secret(session: AsyncSession, name: str) -> bytes:
    """The named secret, created (32 random bytes) by whichever process asks first."""
    await session.execute(
        insert(ServerSecret)
        .values(name=name, value=secrets.token_bytes(32))
        .on_conflict_do_nothing(index_elements=[ServerSecret.name])
    )
    value = await session.scalar(select(ServerSecret.value).where(ServerSecret.name == name))
    assert value is not None
    return value
