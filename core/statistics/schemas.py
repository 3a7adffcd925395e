"""The shapes of `GET /tickets/statistics`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from pydantic import BaseModel, ConfigDict, Field, model_validator

MAX_DAYS = 366


class StatisticsQuery(BaseModel):
    """`from` and `to` are ISO times (a date means its midnight, UTC); by default the last 30 days."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    start: datetime | None = Field(default=None, alias="from")
    end: datetime | None = Field(default=None, alias="to")
    group_id: uuid.UUID | None = None

    @model_validator(mode="after")
    def _window(self) -> StatisticsQuery:
        end = self.end or datetime.now(UTC)
        start = self.start or end - timedelta(days=30)
        end, start = (t if t.tzinfo else t.replace(tzinfo=UTC) for t in (end, start))
        if start >= end:
            raise ValueError("`from` must be before `to`")
        if end - start > timedelta(days=MAX_DAYS):
            raise ValueError(f"at most {MAX_DAYS} days at once")
        self.start, self.end = start, end
        return self


class Percentiles(BaseModel):
    median: float | None
    p90: float | None


class Compliance(BaseModel):
    achieved: int
    breached: int
    active: int
    percent_achieved: float | None


class Satisfaction(BaseModel):
    good: int
    bad: int
    percent_good: float | None


class StatisticsOut(BaseModel):
    by_status: dict[str, int]
    by_priority: dict[str, int]
    by_channel: dict[str, int]
    by_group: dict[str, int]
    created_per_day: dict[str, int]
    solved_per_day: dict[str, int]
    first_reply_minutes: Percentiles
    resolution_minutes: Percentiles
    sla: dict[str, Compliance]
    satisfaction: Satisfaction
