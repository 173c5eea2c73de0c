"""Business-time arithmetic: weekends, holidays, daylight saving, open and closed hours."""

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portal.sla.calendar import BusinessCalendar, NoBusinessHours

NEW_YORK = ZoneInfo("America/New_York")


def local(*args) -> datetime:
    return datetime(*args, tzinfo=NEW_YORK)


calendar = BusinessCalendar(NEW_YORK)  # Monday to Friday, 09:00-17:00


def test_minutes_inside_one_day():
    assert calendar.add_business_minutes(local(2026, 11, 23, 9), 60) == local(2026, 11, 23, 10)


def test_time_before_opening_starts_counting_at_opening():
    assert calendar.add_business_minutes(local(2026, 11, 23, 7, 30), 30) == local(
        2026, 11, 23, 9, 30
    )


def test_a_friday_afternoon_target_runs_over_the_weekend():
    # Friday 16:00 + 2 business hours = Monday 10:00.
    assert calendar.add_business_minutes(local(2026, 11, 27, 16), 120) == local(2026, 11, 30, 10)


def test_weekend_submissions_start_on_monday_morning():
    assert calendar.add_business_minutes(local(2026, 11, 28, 13), 480) == local(2026, 11, 30, 17)


def test_holidays_are_skipped():
    thanksgiving = BusinessCalendar(NEW_YORK, holidays=frozenset({date(2026, 11, 26)}))
    # Wednesday 16:00 + 2 h: 1 h Wednesday, Thursday closed, 1 h Friday.
    assert thanksgiving.add_business_minutes(local(2026, 11, 25, 16), 120) == local(
        2026, 11, 27, 10
    )
    assert (
        thanksgiving.business_minutes_between(local(2026, 11, 25, 9), local(2026, 11, 27, 9)) == 480
    )


def test_daylight_saving_change_keeps_wall_clock_hours():
    # Clocks go back on Sunday 1 Nov 2026: Friday 16:00 EDT + 2 h = Monday 10:00 EST.
    due = calendar.add_business_minutes(local(2026, 10, 30, 16), 120)
    assert due == local(2026, 11, 2, 10)
    assert due.astimezone(UTC).hour == 15  # 10:00 EST is 15:00 UTC (EDT would be 14:00)
    # And 8 open hours on a day the clocks changed are still 8 hours.
    spring = BusinessCalendar(NEW_YORK, hours={d: (time(0), time(8)) for d in range(7)})
    assert spring.business_minutes_between(local(2026, 3, 8, 0), local(2026, 3, 8, 8)) == 7 * 60


def test_minutes_between_counts_only_open_time():
    assert (
        calendar.business_minutes_between(local(2026, 11, 27, 16), local(2026, 11, 30, 10)) == 120
    )
    assert calendar.business_minutes_between(local(2026, 11, 30, 10), local(2026, 11, 27, 16)) == 0


def test_a_calendar_that_never_opens_says_so():
    closed = BusinessCalendar(NEW_YORK, hours={d: None for d in range(7)})
    with pytest.raises(NoBusinessHours):
        closed.add_business_minutes(local(2026, 11, 23, 9), 1)


def test_next_open_is_now_when_open_else_the_next_opening():
    assert calendar.next_open(local(2026, 11, 23, 10)) == local(2026, 11, 23, 10)
    assert calendar.next_open(local(2026, 11, 25, 3)) == local(2026, 11, 25, 9)
    assert calendar.next_open(local(2026, 11, 27, 17)) == local(2026, 11, 30, 9)  # Friday


def test_is_open():
    assert calendar.is_open(local(2026, 11, 23, 9))
    assert not calendar.is_open(local(2026, 11, 23, 17))
    assert not calendar.is_open(local(2026, 11, 28, 12))


moments = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2028, 12, 31)).map(
    lambda naive: naive.replace(tzinfo=UTC)
)


@given(start=moments, minutes=st.integers(min_value=0, max_value=20 * 480))
def test_adding_then_measuring_gives_the_same_minutes(start, minutes):
    due = calendar.add_business_minutes(start, minutes)
    assert due >= start
    assert calendar.business_minutes_between(start, due) == pytest.approx(minutes)


@given(start=moments, first=st.integers(0, 3000), second=st.integers(0, 3000))
def test_adding_in_two_steps_is_adding_once(start, first, second):
    in_two = calendar.add_business_minutes(calendar.add_business_minutes(start, first), second)
    assert in_two == calendar.add_business_minutes(start, first + second)


def _walk_day_by_day(calendar: BusinessCalendar, start: datetime, end: datetime) -> float:
    """The plain definition: add up each day's overlap with the open window."""
    total, day = 0.0, start.astimezone(calendar.zone).date()
    while day <= end.astimezone(calendar.zone).date():
        window = calendar.open_window(day)
        if window:
            overlap = min(window[1], end) - max(window[0], start)
            total += max(0.0, overlap.total_seconds() / 60)
        day = date.fromordinal(day.toordinal() + 1)
    return total


@given(pairs=st.lists(st.tuples(moments, st.integers(0, 800 * 24 * 60)), min_size=1, max_size=6))
def test_long_spans_from_running_totals_match_the_day_by_day_walk(pairs):
    # One calendar across calls, in any order: the running totals are reused and rebased.
    calendar = BusinessCalendar(zone=NEW_YORK, holidays=frozenset({date(2026, 12, 25)}))
    for start, minutes in pairs:
        end = start + timedelta(minutes=minutes)
        assert calendar.business_minutes_between(start, end) == pytest.approx(
            _walk_day_by_day(calendar, start, end)
        )
