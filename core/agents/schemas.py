from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, StringConstraints

from core.enums import AgentRole
from core.schemas import EmailAddress

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]


class AgentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailAddress
    name: Name
    role: AgentRole = AgentRole.agent


class AgentUpdate(BaseModel):
    """Agents are never deleted (their work stays attributed): deactivate them instead."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    role: AgentRole | None = None
    active: bool | None = None


class AgentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    email: str
    role: AgentRole
    active: bool
    created_at: datetime
    updated_at: datetime


class TokenIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(strip_whitespace=True, max_length=255)] = ""
    agent_id: uuid.UUID | None = None  # only your own id: tokens are issued to their own agent


class TokenOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    agent_id: uuid.UUID
    name: str
    prefix: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class IssuedToken(TokenOut):
    token: str  # shown once, never stored


class TokenList(BaseModel):
    tokens: list[TokenOut]
