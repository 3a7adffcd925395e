from __future__ import annotations

import uuid

from pydantic import BaseModel
from sqlalchemy import delete, select
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from core.agents.models import Agent
from core.agents.schemas import AgentOut
from core.crud import Crud
from core.errors import Invalid
from core.groups.models import Group, group_members
from core.groups.schemas import GroupOut, GroupUpdate


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


group_service = GroupService()


async def _set_members(session: AsyncSession, group: Group, data: BaseModel) -> None:
    agent_ids = getattr(data, "agent_ids", None)
    if agent_ids is None or ("agent_ids" not in data.model_fields_set and isinstance(data, GroupUpdate)):
        return
    agent_ids = list(dict.fromkeys(agent_ids))
    known = set(await session.scalars(select(Agent.id).where(Agent.id.in_(agent_ids))))
    unknown = {f"agent_ids.{i}": "no such agent" for i, a in enumerate(agent_ids) if a not in known}
    if unknown:
        raise Invalid("unknown agents", unknown)
    await session.execute(delete(group_members).where(group_members.c.group_id == group.id))
    if agent_ids:
        await session.execute(
            insert(group_members).values([{"group_id": group.id, "agent_id": a} for a in agent_ids])
        )


async def render_group(
    session: AsyncSession, group: Group, include: frozenset[str] = frozenset()
) -> GroupOut:
    """`include` may name `agents`: the members themselves, not only their ids."""
    members = list(await session.scalars(
        select(group_members.c.agent_id).where(group_members.c.group_id == group.id)
    ))
    agents = None
    if "agents" in include:
        rows = await session.scalars(select(Agent).where(Agent.id.in_(members)).order_by(Agent.name, Agent.id))
        agents = [AgentOut.model_validate(a) for a in rows]
    return GroupOut(
        id=group.id, name=group.name, description=group.description, agent_ids=members,
        agents=agents, created_at=group.created_at, updated_at=group.updated_at,
    )


group_crud: Crud[Group] = Crud(
    Group, "group", extra_fields=frozenset({"agent_ids"}), after_write=_set_members
)
