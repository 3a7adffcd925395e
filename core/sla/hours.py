"""Business hours: counting minutes only while the desk is open.

A schedule is a time zone and, per weekday, a list of opening intervals (local wall-clock
times, `["09:00", "17:00"]`). `add_minutes` walks forward through the open intervals;
`minutes_between` counts the open minutes of a span. With no schedule both are plain clock
arithmetic. Pure: no database.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from typing import Annotated
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_DAYS_AHEAD = 3660  # a target further than ten years of open hours away is a mistake
HHMM = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$|^24:00$")]


def _clock(value: str) -> time | None:
    """`HH:MM` as a time; None for 24:00 (the end of the day)."""
    hours, minutes = (int(p) for p in value.split(":"))
    return None if hours == 24 else time(hours, minutes)


class BusinessHours(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timezone: str = "UTC"
    weekly: dict[str, list[tuple[HHMM, HHMM]]]

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value

    @model_validator(mode="after")
    def _intervals(self) -> BusinessHours:
        unknown = set(self.weekly) - set(DAYS)
        if unknown:
            raise ValueError(f"days are {', '.join(DAYS)}; not {', '.join(sorted(unknown))}")
        open_somewhere = False
        for day, intervals in self.weekly.items():
            previous = "00:00"
            for start, end in sorted(intervals):
                if not start < end:
                    raise ValueError(f"{day}: {start}-{end} does not end after it starts")
                if start < previous:
                    raise ValueError(f"{day}: intervals overlap")
                previous = end
                open_somewhere = True
        if not open_somewhere:
            raise ValueError("business hours need at least one open interval")
        return self

    def intervals_on(self, day: date) -> list[tuple[datetime, datetime]]:
        """The open intervals of a local calendar day, as aware datetimes (in UTC)."""
        zone = ZoneInfo(self.timezone)
        result = []
        for start, end in sorted(self.weekly.get(DAYS[day.weekday()], [])):
            begin = datetime.combine(day, _clock(start) or time(0), tzinfo=zone)
            close_clock = _clock(end)
            close = (
                datetime.combine(day + timedelta(days=1), time(0), tzinfo=zone) if close_clock is None
                else datetime.combine(day, close_clock, tzinfo=zone)
            )
            begin, close = begin.astimezone(ZoneInfo("UTC")), close.astimezone(ZoneInfo("UTC"))
            if begin < close:  # an interval inside a DST gap can vanish
                result.append((begin, close))
        return result

    def open_intervals(self, start: datetime):  # type: ignore[no-untyped-def]
        """Open intervals from `start` onwards (the first one clipped to it), in order."""
        day = start.astimezone(ZoneInfo(self.timezone)).date() - timedelta(days=1)
        for _ in range(MAX_DAYS_AHEAD):
            for begin, close in self.intervals_on(day):
                if close > start:
                    yield max(begin, start), close
            day += timedelta(days=1)


def add_minutes(start: datetime, minutes: float, hours: BusinessHours | None) -> datetime:
    """The moment `minutes` open minutes after `start`."""
    if hours is None:
        return start + timedelta(minutes=minutes)
    left = timedelta(minutes=minutes)
    last = start
    for begin, close in hours.open_intervals(start):
        if left <= timedelta(0):
            return last
        span = close - begin
        if span >= left:
            return begin + left
        left -= span
        last = close
    raise ValueError("the target lies beyond the business hours' horizon")


def minutes_between(start: datetime, end: datetime, hours: BusinessHours | None) -> float:
    """Open minutes in [start, end) (0 if end is not after start)."""
    if end <= start:
        return 0.0
    if hours is None:
        return (end - start).total_seconds() / 60
    total = timedelta(0)
    for begin, close in hours.open_intervals(start):
        if begin >= end:
            break
        total += min(close, end) - begin
    return total.total_seconds() / 60


def is_open(moment: datetime, hours: BusinessHours) -> bool:
    """Whether `moment` is inside (or at the closing edge of) an open interval."""
    day = moment.astimezone(ZoneInfo(hours.timezone)).date()
    return any(
        begin <= moment <= close
        for d in (day - timedelta(days=1), day, day + timedelta(days=1))
        for begin, close in hours.intervals_on(d)
    )
