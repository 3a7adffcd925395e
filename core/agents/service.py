from __future__ import annotations

import uuid

from pydantic import BaseModel
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from core.agents import tokens
from core.agents.models import Agent
from core.crud import Crud
from core.errors import Conflict
from core.groups.models import group_members
from core.enums import AgentRole


class AgentService:
    async def by_email(self, session: AsyncSession, email: str) -> Agent | None:
        return await session.scalar(select(Agent).where(Agent.email == email.strip().lower()))

    async def create(
        self, session: AsyncSession, *, email: str, name: str, role: AgentRole
    ) -> Agent:
        agent = Agent(id=uuid.uuid4(), email=email.strip().lower(), name=name, role=role, active=True)
        session.add(agent)
        await session.flush()
        return agent

    async def token_for(
        self, session: AsyncSession, *, email: str, name: str | None, role: AgentRole
    ) -> str:
        """A new token for the agent with this email, created (with `role`) if unknown."""
        agent = await self.by_email(session, email)
        if agent is None:
            agent = await self.create(session, email=email, name=name or email, role=role)
        tokens_value = tokens.issue(session, agent=agent, name="cli")
        await session.flush()
        return tokens_value

    async def any_admin(self, session: AsyncSession) -> bool:
        found = await session.scalar(select(Agent.id).where(Agent.role == AgentRole.admin).limit(1))
        return found is not None


agent_service = AgentService()


async def _keep_an_admin(session: AsyncSession, agent: Agent, data: BaseModel) -> None:
    """The last active admin cannot be demoted or deactivated: someone must hold the keys."""
    if agent.role is AgentRole.admin and agent.active:
        return
    others = await session.scalar(
        select(func.count()).select_from(Agent).where(
            Agent.role == AgentRole.admin, Agent.active.is_(True), Agent.id != agent.id
        )
    )
    if not others:
        raise Conflict("this is the last active admin", {"role": "keep at least one active admin"})


def _in_groups(group_ids: list[uuid.UUID]) -> ColumnElement[bool]:
    return Agent.id.in_(select(group_members.c.agent_id).where(group_members.c.group_id.in_(group_ids)))


agent_crud: Crud[Agent] = Crud(
    Agent, "agent", before_write=_keep_an_admin, filters={"group_id": _in_groups}
)
