from __future__ import annotations

import uuid

from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.groups.models import Group


class GroupService:
    async def ensure(self, session: AsyncSession, *, name: str) -> uuid.UUID:
        await session.execute(
            insert(Group).values(id=uuid.uuid4(), name=name).on_conflict_do_nothing(
                index_elements=[Group.name]
            )
        )
        group_id = await session.scalar(select(Group.id).where(Group.name == name))
        assert group_id is not None
        return group_id

    async def id_by_name(self, session: AsyncSession, name: str) -> uuid.UUID | None:
        return await session.scalar(select(Group.id).where(Group.name == name))

    async def list(self, session: AsyncSession) -> list[Group]:
        return list(await session.scalars(select(Group).order_by(Group.name)))


group_service = GroupService()
