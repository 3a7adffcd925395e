"""SLA policies: targets in minutes per priority, for the tickets a filter selects."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PositiveInt, StringConstraints

from core.enums import Channel, TicketPriority, TicketType
from core.sla.hours import BusinessHours

Title = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Metric = Literal["first_reply_time", "next_reply_time", "resolution_time"]
Minutes = Annotated[PositiveInt, Field(le=525_600)]


class SlaFilter(BaseModel):
    model_config = ConfigDict(extra="forbid")

    priority: list[TicketPriority] | None = None
    type: list[TicketType] | None = None
    channel: list[Channel] | None = None
    group_id: list[uuid.UUID] | None = None
    tags: list[str] | None = None


class SlaPolicyIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title
    description: Annotated[str, StringConstraints(max_length=10_000)] | None = None
    position: int = Field(default=0, ge=0, le=10_000)
    filter: SlaFilter = Field(default_factory=SlaFilter)
    metrics: dict[Metric, dict[TicketPriority, Minutes]] = Field(min_length=1)
    active: bool = True
    business_hours: BusinessHours | None = None


class SlaPolicyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Title | None = None
    description: Annotated[str, StringConstraints(max_length=10_000)] | None = None
    position: int | None = Field(default=None, ge=0, le=10_000)
    filter: SlaFilter | None = None
    metrics: dict[Metric, dict[TicketPriority, Minutes]] | None = Field(default=None, min_length=1)
    active: bool | None = None
    business_hours: BusinessHours | None = None


class SlaPolicyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    title: str
    description: str | None
    position: int
    filter: SlaFilter
    metrics: dict[Metric, dict[TicketPriority, int]]
    active: bool
    business_hours: BusinessHours | None
    created_at: datetime
    updated_at: datetime


class SlaTargetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    metric: Metric
    policy_id: uuid.UUID | None
    started_at: datetime
    target_at: datetime
    fulfilled_at: datetime | None
    breached_at: datetime | None
    paused: bool


class TicketSla(BaseModel):
    sla_breach_at: datetime | None
    targets: list[SlaTargetOut]


class MetricCompliance(BaseModel):
    achieved: int
    breached: int
    active: int
    percent_achieved: float | None


class ComplianceQuery(BaseModel):
    """`from`/`to` bound when targets started (by default the last 30 days)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: datetime | None = Field(default=None, alias="from")
    end: datetime | None = Field(default=None, alias="to")
    group_id: uuid.UUID | None = None
    policy_id: uuid.UUID | None = None


class Compliance(BaseModel):
    metrics: dict[Metric, MetricCompliance]
