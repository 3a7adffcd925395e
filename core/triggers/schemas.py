"""Triggers: conditions on a ticket change and the actions they take (run by core/triggers/runner.py).

A condition is `{field, operator, value}`; `{all: [...], any: [...]}` matches when every `all`
condition holds and, if there are `any` conditions, at least one of them. Which operators a
field takes, and which values, is checked when the trigger is written (422), so a stored
trigger is one the runner can read.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator

from core.enums import AuthorType, Channel, TicketPriority, TicketStatus, TicketType, Visibility
from core.tickets.schemas import TicketUpdate
from core.triggers.templates import template_problem

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]

# ticket fields: the condition reads the ticket as it is after the change (so far)
TICKET_FIELDS = (
    "status", "priority", "type", "channel", "group_id", "assignee_id", "requester_id",
    "organization_id", "tags", "subject",
)
ConditionField = Literal[
    "event", "status", "priority", "type", "channel", "group_id", "assignee_id", "requester_id",
    "requester_email", "requester_domain", "organization_id", "tags", "subject",
    "comment_text", "comment_visibility", "comment_author_type", "via", "sla_metric", "satisfaction_score",
]
Operator = Literal[
    "is", "is_not", "contains", "not_contains", "changed", "changed_to", "changed_from",
    "less_than", "greater_than", "includes_any", "includes_none",
]
VIA = ("email", "api", "macro", "trigger", "automation")
# sla_breached: a target of the ticket passed unmet (its `sla_metric`); satisfaction_rated: the
# requester rated the ticket (`satisfaction_score`)
EVENTS = ("created", "updated", "sla_breached", "satisfaction_rated")
SLA_METRICS = ("first_reply_time", "next_reply_time", "resolution_time")
ENUM_VALUES: dict[str, tuple[str, ...]] = {
    "event": EVENTS, "via": VIA,
    "status": tuple(s.value for s in TicketStatus), "priority": tuple(p.value for p in TicketPriority),
    "type": tuple(t.value for t in TicketType), "channel": tuple(c.value for c in Channel),
    "comment_visibility": tuple(v.value for v in Visibility),
    "comment_author_type": tuple(a.value for a in AuthorType),
    "sla_metric": SLA_METRICS, "satisfaction_score": ("good", "bad"),
}
TEXT_FIELDS = ("subject", "comment_text", "requester_email", "requester_domain")
CHANGE_OPERATORS = ("changed", "changed_to", "changed_from")


class Condition(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: ConditionField
    operator: Operator
    value: Any = None

    @model_validator(mode="after")
    def _operator_fits_field(self) -> Condition:
        self.check()
        return self

    def check(self) -> None:
        """Raises ValueError if the operator does not fit the field or the value."""
        field, op, value = self.field, self.operator, self.value
        if op in ("less_than", "greater_than") and field != "priority":
            raise ValueError(f"{op} compares priorities only")
        if op in ("includes_any", "includes_none"):
            if field != "tags" or not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ValueError(f"{op} takes a list of tags and the field tags")
        if op in ("contains", "not_contains") and field not in (*TEXT_FIELDS, "tags"):
            raise ValueError(f"{op} applies to text fields and tags, not {field}")
        if op in CHANGE_OPERATORS and field not in TICKET_FIELDS:
            raise ValueError(f"{op} applies to ticket fields, not {field}")
        if field == "tags" and op in ("is", "is_not", "less_than", "greater_than"):
            raise ValueError("tags take contains, not_contains, includes_any, includes_none or changed")
        takes_value = op not in ("changed",)
        allowed = ENUM_VALUES.get(field)
        if takes_value and allowed is not None and op not in ("includes_any", "includes_none"):
            if value not in allowed and not (value is None and field == "type"):
                raise ValueError(f"{field} is one of {', '.join(allowed)}")
        if takes_value and op in ("contains", "not_contains") and not isinstance(value, str):
            raise ValueError(f"{op} takes a text value")
        if field.endswith("_id") and takes_value and value is not None and op not in ("changed",):
            try:
                uuid.UUID(str(value))
            except ValueError:
                raise ValueError(f"{field} takes a UUID or null") from None


class Conditions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    all: list[Condition] = Field(default_factory=list, max_length=50)
    any: list[Condition] = Field(default_factory=list, max_length=50)


# the built-in mails a notification can send (outbound/templates), and to whom each may go
BUILTIN_TEMPLATES: dict[str, tuple[str, ...]] = {
    "ticket_created": ("requester",),
    "ticket_assigned": ("assignee", "group"),
    "ticket_new_comment": ("requester", "assignee", "group"),
    "ticket_status_changed": ("requester",),
}


class Notification(BaseModel):
    """A mail a trigger sends: jinja2 templates with `ticket`, `requester`, `comment`, `agent`.

    With `template`, one of the built-in mails (the seeded default triggers use these);
    `subject` and `body`, if given, replace its subject and text. Without, both are needed."""

    model_config = ConfigDict(extra="forbid")

    template: Literal["ticket_created", "ticket_assigned", "ticket_new_comment", "ticket_status_changed"] | None = None
    subject: Annotated[str, StringConstraints(min_length=1, max_length=998)] | None = None
    body: Annotated[str, StringConstraints(min_length=1, max_length=65_536)] | None = None

    @model_validator(mode="after")
    def _templates_parse(self) -> Notification:
        if self.template is None and (self.subject is None or self.body is None):
            raise ValueError("a notification needs a subject and a body (or a built-in template)")
        for name in ("subject", "body"):
            source = getattr(self, name)
            problem = template_problem(source) if source is not None else None
            if problem:
                raise ValueError(f"{name} is not a valid template ({problem})")
        return self

ActionField = Literal[
    "status", "priority", "type", "group_id", "assignee_id", "tags", "add_tags", "remove_tags",
    "comment", "notify_requester", "notify_assignee", "notify_group",
]
FIELD_ACTIONS = ("status", "priority", "type", "group_id", "assignee_id", "tags")
NOTIFY_ACTIONS = ("notify_requester", "notify_assignee", "notify_group")
ROUND_ROBIN = "round_robin"


class TriggerAction(BaseModel):
    model_config = ConfigDict(extra="forbid")

    field: ActionField
    value: Any
    # for `comment`: public (mailed to the requester) or internal
    public: bool = True

    @model_validator(mode="after")
    def _value_fits_field(self) -> TriggerAction:
        try:
            self.value = self._checked_value()
        except ValidationError as exc:
            problem = exc.errors()[0]
            raise ValueError(f"{self.field}: {problem['msg']}") from None
        return self

    def _checked_value(self) -> Any:
        if self.field in NOTIFY_ACTIONS:
            notification = Notification.model_validate(self.value)
            audience = self.field.removeprefix("notify_")
            if notification.template and audience not in BUILTIN_TEMPLATES[notification.template]:
                raise ValueError(f"{notification.template} is not sent by {self.field}")
            return notification.model_dump(exclude_none=True)
        if self.field in ("add_tags", "remove_tags"):
            value = self.value if isinstance(self.value, list) else [self.value]
            return TicketUpdate.model_validate({"tags": value}).tags
        if self.field == "assignee_id" and self.value == ROUND_ROBIN:
            return self.value
        if self.field == "comment":
            return TicketUpdate.model_validate({"comment": {"body": self.value}}).comment.body  # type: ignore[union-attr]
        return TicketUpdate.model_validate({self.field: self.value}).model_dump(mode="json")[self.field]


class TriggerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    description: Annotated[str, StringConstraints(max_length=10_000)] | None = None
    position: int = Field(default=0, ge=0, le=10_000)
    conditions: Conditions
    actions: list[TriggerAction] = Field(min_length=1, max_length=50)
    active: bool = True


class TriggerUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    description: Annotated[str, StringConstraints(max_length=10_000)] | None = None
    position: int | None = Field(default=None, ge=0, le=10_000)
    conditions: Conditions | None = None
    actions: list[TriggerAction] | None = Field(default=None, min_length=1, max_length=50)
    active: bool | None = None


class TriggerOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    description: str | None
    position: int
    conditions: Conditions
    actions: list[TriggerAction]
    active: bool
    created_at: datetime
    updated_at: datetime
