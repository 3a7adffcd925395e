"""Set-up steps a deployment takes once in its life (the default triggers), remembered so a
restart does not take them again — even when their result was deleted since."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, String, text
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Mapped, mapped_column

from core.models_base import Base


class SetupStep(Base):
    __tablename__ = "setup_steps"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    done_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=text("now()"), nullable=False)


async def first_time(session: AsyncSession, name: str) -> bool:
    """Records the step; True only for the transaction that recorded it (it then takes the step)."""
    done = await session.scalar(
        insert(SetupStep).values(name=name).on_conflict_do_nothing(index_elements=[SetupStep.name])
        .returning(SetupStep.name)
    )
    return done is not None
