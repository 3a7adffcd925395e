"""Macros: a named set of ticket changes (fields and a comment) applied in one audited update."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from core.tickets.schemas import TicketUpdate

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
ActionField = Literal["status", "priority", "type", "assignee_id", "group_id", "tags", "comment"]


class Action(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: ActionField
    value: Any
    # for `comment`: public (mailed to the requester) or internal
    public: bool = True


def actions_to_update(actions: list[Action]) -> TicketUpdate:
    """The ticket change a list of actions stands for (validated like any update)."""
    data: dict[str, Any] = {}
    for action in actions:
        if action.field == "comment":
            data["comment"] = {
                "body": action.value, "visibility": "public" if action.public else "internal",
            }
        else:
            data[action.field] = action.value
    return TicketUpdate.model_validate(data)


class _WithActions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    @model_validator(mode="after")
    def _actions_are_a_valid_update(self):  # type: ignore[no-untyped-def]
        actions = getattr(self, "actions", None)
        if actions:
            actions_to_update(actions)  # raises ValueError-based errors on bad values
        return self


class MacroIn(_WithActions):
    title: Title
    description: Annotated[str, StringConstraints(max_length=10_000)] | None = None
    actions: list[Action] = Field(min_length=1, max_length=50)
    active: bool = True


class MacroUpdate(_WithActions):
    title: Title | None = None
    description: Annotated[str, StringConstraints(max_length=10_000)] | None = None
    actions: list[Action] | None = Field(default=None, min_length=1, max_length=50)
    active: bool | None = None


class MacroOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    description: str | None
    actions: list[Action]
    active: bool
    created_at: datetime
    updated_at: datetime
