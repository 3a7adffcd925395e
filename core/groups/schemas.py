from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from core.agents.schemas import AgentOut
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Text = Annotated[str, StringConstraints(max_length=10_000)]


class GroupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Text | None = None
    agent_ids: list[uuid.UUID] = Field(default_factory=list, max_length=1000)


class GroupUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    description: Text | None = None
    agent_ids: list[uuid.UUID] | None = Field(default=None, max_length=1000)


class GroupOut(BaseModel):
    id: uuid.UUID
    name: str
    description: str | None
    agent_ids: list[uuid.UUID]
    agents: list[AgentOut] | None = Field(default=None, description="the members, with ?include=agents")
    created_at: datetime
    updated_at: datetime
