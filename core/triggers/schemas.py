"""Triggers: conditions on a ticket event and the actions to take (stored; evaluation comes later)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from core.macros.schemas import Action

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]


class Condition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: Literal[
        "status", "priority", "type", "channel", "group_id", "assignee_id", "requester_id",
        "organization_id", "tags", "subject", "event",
    ]
    operator: Literal["is", "is_not", "contains", "not_contains", "changed", "changed_to"]
    value: Any = None


class Conditions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    all: list[Condition] = Field(default_factory=list, max_length=50)
    any: list[Condition] = Field(default_factory=list, max_length=50)


class TriggerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    description: Annotated[str, StringConstraints(max_length=10_000)] | None = None
    position: int = Field(default=0, ge=0, le=10_000)
    conditions: Conditions
    actions: list[Action] = Field(min_length=1, max_length=50)
    active: bool = True


class TriggerUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    description: Annotated[str, StringConstraints(max_length=10_000)] | None = None
    position: int | None = Field(default=None, ge=0, le=10_000)
    conditions: Conditions | None = None
    actions: list[Action] | None = Field(default=None, min_length=1, max_length=50)
    active: bool | None = None


class TriggerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    description: str | None
    position: int
    conditions: Conditions
    actions: list[Action]
    active: bool
    created_at: datetime
    updated_at: datetime
