"""Business-time arithmetic over a weekly timetable, a time zone and holidays.

Pure Python: no database, no Flask. Open hours are wall-clock times in the calendar's
zone, so a daylight-saving change moves them with the clocks. All arithmetic is done
on UTC instants (subtracting aware datetimes that share a tzinfo would compare wall
clocks, not elapsed time).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

# Monday=0 ... Sunday=6 -> (opens, closes) or None when closed.
WeeklyHours = Mapping[int, tuple[time, time] | None]

DEFAULT_WEEKLY_HOURS: dict[int, tuple[time, time] | None] = {
    **{day: (time(9), time(17)) for day in range(5)},
    5: None,
    6: None,
}
# How many closed days in a row (holidays) before deciding the calendar never opens.
SEARCH_DAYS = 3 * 366


class NoBusinessHours(ValueError):
    """The calendar never opens: no due time can be computed."""


@dataclass(frozen=True)
class BusinessCalendar:
    zone: ZoneInfo
    hours: WeeklyHours = field(default_factory=lambda: dict(DEFAULT_WEEKLY_HOURS))
    holidays: frozenset[date] = frozenset()
    # Windows already worked out, by date: a page of clocks overdue by months asks for
    # the same days again and again.
    _windows: dict = field(default_factory=dict, compare=False, repr=False)
    # Running totals of open minutes per day (see _open_minutes_before).
    _running: dict = field(default_factory=dict, compare=False, repr=False)

    def open_window(self, day: date) -> tuple[datetime, datetime] | None:
        """The UTC instants the business opens and closes on a local date, if it does."""
        if day not in self._windows:
            self._windows[day] = self._compute_window(day)
        return self._windows[day]

    def _compute_window(self, day: date) -> tuple[datetime, datetime] | None:
        if day in self.holidays:
            return None
        hours = self.hours.get(day.weekday())
        if not hours:
            return None
        opens, closes = hours
        start = datetime.combine(day, opens, tzinfo=self.zone).astimezone(UTC)
        end = datetime.combine(day, closes, tzinfo=self.zone).astimezone(UTC)
        return (start, end) if end > start else None

    def _windows_from(self, moment: datetime) -> Iterator[tuple[datetime, datetime]]:
        if not any(self.hours.get(day) for day in range(7)):
            raise NoBusinessHours("the calendar has no open hours on any weekday")
        day = moment.astimezone(self.zone).date()
        closed_run = 0
        while closed_run < SEARCH_DAYS:  # only a holiday list covering years gets here
            window = self.open_window(day)
            closed_run = closed_run + 1 if window is None else 0
            if window is not None and window[1] > moment:
                yield window
            day += timedelta(days=1)
        raise NoBusinessHours("no open hours within three years")

    def business_minutes_between(self, start: datetime, end: datetime) -> float:
        """Open minutes from `start` to `end` (0 when end is not after start)."""
        start, end = start.astimezone(UTC), end.astimezone(UTC)
        if end <= start:
            return 0.0
        first = start.astimezone(self.zone).date()
        last = end.astimezone(self.zone).date()
        if first == last:
            return self._open_minutes_on(first, start, end)
        # The two partial days, and the whole days between from running totals: a clock
        # overdue for months costs what one overdue by an hour does.
        # (The earlier day first: asking for it may move the base, the later one never.)
        before_second_day = self._open_minutes_before(first + timedelta(days=1))
        whole_days = self._open_minutes_before(last) - before_second_day
        return (
            self._open_minutes_on(first, start, end)
            + whole_days
            + self._open_minutes_on(last, start, end)
        )

    def _open_minutes_on(self, day: date, start: datetime, end: datetime) -> float:
        window = self.open_window(day)
        if window is None:
            return 0.0
        overlap_start, overlap_end = max(window[0], start), min(window[1], end)
        return max(0.0, (overlap_end - overlap_start).total_seconds() / 60)

    def _open_minutes_before(self, day: date) -> float:
        """Open minutes from a base day to the start of `day`; only differences matter.

        Totals are kept per day from the base on and extended as later days are asked
        for; a day before the base moves the base back a month and starts again.
        """
        ordinal = day.toordinal()
        if not self._running or ordinal < self._running["base"]:
            self._running.update(base=ordinal - 31, totals=[0.0])
        base, totals = self._running["base"], self._running["totals"]
        while base + len(totals) - 1 < ordinal:
            whole_day = date.fromordinal(base + len(totals) - 1)
            window = self.open_window(whole_day)
            length = (window[1] - window[0]).total_seconds() / 60 if window else 0.0
            totals.append(totals[-1] + length)
        return totals[ordinal - base]

    def add_business_minutes(self, start: datetime, minutes: float) -> datetime:
        """The instant `minutes` of open time after `start`."""
        start = start.astimezone(UTC)
        remaining = timedelta(minutes=minutes)
        if remaining <= timedelta(0):
            return start
        for window_start, window_end in self._windows_from(start):
            cursor = max(window_start, start)
            available = window_end - cursor
            if remaining <= available:
                return cursor + remaining
            remaining -= available
        raise AssertionError("unreachable: _windows_from raises when it runs out")

    def next_open(self, moment: datetime) -> datetime:
        """`moment` if the practice is open then, else when it next opens."""
        moment = moment.astimezone(UTC)
        window_start, _window_end = next(iter(self._windows_from(moment)))
        return max(window_start, moment)

    def is_open(self, moment: datetime) -> bool:
        window = self.open_window(moment.astimezone(self.zone).date())
        return window is not None and window[0] <= moment.astimezone(UTC) < window[1]

    @property
    def minutes_per_business_day(self) -> float:
        """The length of a typical open day, used to read targets in business days."""
        lengths = [
            (datetime.combine(date.min, c) - datetime.combine(date.min, o)).total_seconds() / 60
            for hours in self.hours.values()
            if hours
            for o, c in [hours]
        ]
        return max(lengths) if lengths else 0.0
