"""Business-hours arithmetic, with hypothesis: targets land inside open hours, and pausing
never brings a target closer."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from core.sla.hours import BusinessHours, add_minutes, is_open, minutes_between

OFFICE = BusinessHours(timezone="Europe/Berlin", weekly={
    day: [("09:00", "12:30"), ("13:30", "17:00")] for day in ("mon", "tue", "wed", "thu", "fri")
})
SCHEDULES = [
    OFFICE,
    BusinessHours(timezone="America/New_York", weekly={"mon": [("00:00", "24:00")], "sat": [("02:00", "03:30")]}),
    BusinessHours(timezone="Asia/Kolkata", weekly={d: [("08:00", "20:00")] for d in ("sun", "mon", "tue", "wed", "thu")}),
]
moments = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2028, 12, 31), timezones=st.just(UTC))
minutes = st.integers(min_value=1, max_value=60 * 24 * 30)
schedules = st.sampled_from(SCHEDULES)


@settings(max_examples=300, deadline=None)
@given(start=moments, length=minutes, hours=schedules)
def test_a_target_lands_inside_business_hours_and_counts_back(start: datetime, length: int, hours: BusinessHours) -> None:
    target = add_minutes(start, length, hours)
    assert target > start and is_open(target, hours)
    assert minutes_between(start, target, hours) == pytest.approx(length)


@settings(max_examples=200, deadline=None)
@given(start=moments, length=minutes, pause_at=st.integers(0, 60 * 24 * 40), pause_for=st.integers(0, 60 * 24 * 40),
       hours=st.one_of(st.none(), schedules))
def test_pausing_never_shortens_a_target(
    start: datetime, length: int, pause_at: int, pause_for: int, hours: BusinessHours | None,
) -> None:
    target = add_minutes(start, length, hours)
    paused = start + timedelta(minutes=pause_at)
    resumed = paused + timedelta(minutes=pause_for)
    # resuming moves the target on by the open minutes spent paused
    moved = add_minutes(start, length + minutes_between(paused, resumed, hours), hours)
    assert moved >= target


@settings(max_examples=200, deadline=None)
@given(start=moments, a=minutes, b=minutes, hours=schedules)
def test_more_minutes_never_an_earlier_target(start: datetime, a: int, b: int, hours: BusinessHours) -> None:
    low, high = sorted((a, b))
    assert add_minutes(start, low, hours) <= add_minutes(start, high, hours)


def test_an_office_week() -> None:
    friday_evening = datetime(2026, 11, 27, 16, 0, tzinfo=UTC)  # 17:00 in Berlin: closing time
    assert add_minutes(friday_evening, 60, OFFICE) == datetime(2026, 11, 30, 9, 0, tzinfo=UTC)  # Monday 10:00
    monday_noon = datetime(2026, 11, 30, 11, 0, tzinfo=UTC)  # 12:00 Berlin
    assert add_minutes(monday_noon, 60, OFFICE) == datetime(2026, 11, 30, 13, 0, tzinfo=UTC)  # lunch skipped
    assert minutes_between(friday_evening - timedelta(hours=1), monday_noon, OFFICE) == 60 + 180
    assert add_minutes(monday_noon, 90, None) == monday_noon + timedelta(minutes=90)


@pytest.mark.parametrize("bad", [
    {"timezone": "Mars/Olympus", "weekly": {"mon": [("09:00", "17:00")]}},
    {"weekly": {"mon": [("17:00", "09:00")]}},
    {"weekly": {"mon": [("09:00", "12:00"), ("11:00", "13:00")]}},
    {"weekly": {"funday": [("09:00", "17:00")]}},
    {"weekly": {"mon": [("9am", "17:00")]}},
    {"weekly": {}},
])
def test_schedules_that_cannot_work_are_refused(bad: dict) -> None:
    with pytest.raises(ValidationError):
        BusinessHours.model_validate(bad)
