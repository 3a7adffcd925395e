"""Automations: triggers that look at time, run by the scheduler (see core/automations/service.py)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from core.triggers.schemas import Condition, ConditionField, Title, TriggerAction

TIME_FIELDS = (
    "hours_since_created", "hours_since_updated", "hours_since_status_change",
    "hours_since_requester_update", "hours_since_assignee_update", "hours_until_sla_breach",
    "hours_since_sla_breach",
)
TimeField = Literal[
    "hours_since_created", "hours_since_updated", "hours_since_status_change",
    "hours_since_requester_update", "hours_since_assignee_update", "hours_until_sla_breach",
    "hours_since_sla_breach",
]


class AutomationCondition(Condition):
    field: ConditionField | TimeField  # type: ignore[assignment]

    def check(self) -> None:
        if self.field not in TIME_FIELDS:
            return super().check()
        if self.operator not in ("is", "less_than", "greater_than"):
            raise ValueError(f"{self.field} takes is, less_than or greater_than")
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)) or self.value < 0:
            raise ValueError(f"{self.field} takes a number of hours (fractions allowed)")


class AutomationConditions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    all: list[AutomationCondition] = Field(default_factory=list, max_length=50)
    any: list[AutomationCondition] = Field(default_factory=list, max_length=50)


class AutomationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    description: Annotated[str, StringConstraints(max_length=10_000)] | None = None
    position: int = Field(default=0, ge=0, le=10_000)
    conditions: AutomationConditions
    actions: list[TriggerAction] = Field(min_length=1, max_length=50)
    active: bool = True


class AutomationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    description: Annotated[str, StringConstraints(max_length=10_000)] | None = None
    position: int | None = Field(default=None, ge=0, le=10_000)
    conditions: AutomationConditions | None = None
    actions: list[TriggerAction] | None = Field(default=None, min_length=1, max_length=50)
    active: bool | None = None


class AutomationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    description: str | None
    position: int
    conditions: AutomationConditions
    actions: list[TriggerAction]
    active: bool
    created_at: datetime
    updated_at: datetime
