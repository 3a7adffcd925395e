"""Who is doing something: written into audit entries and events."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from core.enums import AgentRole, AuthorType


@dataclass(frozen=True)
class Actor:
    type: AuthorType
    id: uuid.UUID | None
    role: AgentRole | None = None

    @classmethod
    def agent(cls, agent: object) -> Actor:
        return cls(AuthorType.agent, agent.id, agent.role)  # type: ignore[attr-defined]
