"""The periods a scorecard covers: a week or a month of the practice's calendar, or a
custom range of days. Boundaries are local midnights, turned into UTC instants."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

from flask_babel import gettext

from portal.clock import utcnow
from portal.formatting import format_month, format_plain_day
from portal.localtime import practice_zone
from portal.scorecard.metrics import Scope, re_referral_settles_at


@dataclass(frozen=True)
class Period:
    kind: str  # "week", "month" or "custom"
    first_day: date
    last_day: date  # inclusive

    @property
    def label(self) -> str:
        if self.kind == "week":
            return gettext("Week of %(day)s", day=format_plain_day(self.first_day))
        if self.kind == "month":
            return format_month(self.first_day)
        return gettext(
            "%(first)s to %(last)s",
            first=format_plain_day(self.first_day),
            last=format_plain_day(self.last_day),
        )

    @property
    def arguments(self) -> dict[str, str]:
        """The query arguments that ask for exactly this period (for links)."""
        if self.kind == "custom":
            return {
                "period": "custom",
                "start": self.first_day.isoformat(),
                "end": self.last_day.isoformat(),
            }
        return {"period": self.kind, "on": self.first_day.isoformat()}

    def scope(self, partner_id: int | None = None) -> Scope:
        return Scope(
            _midnight(self.first_day), _midnight(self.last_day + timedelta(days=1)), partner_id
        )


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=practice_zone()).astimezone(UTC)


def today() -> date:
    return utcnow().astimezone(practice_zone()).date()


def week_of(day: date) -> Period:
    monday = day - timedelta(days=day.weekday())
    return Period("week", monday, monday + timedelta(days=6))


def month_of(day: date) -> Period:
    first = day.replace(day=1)
    next_month = (first + timedelta(days=32)).replace(day=1)
    return Period("month", first, next_month - timedelta(days=1))


def last_complete_week() -> Period:
    return week_of(today() - timedelta(days=7))


def latest_re_referral_week(now: datetime | None = None) -> Period:
    """The newest week whose referrals have all had their 30 days (the practice's days,
    as the figure counts them) by `now`. The week that just ended is never it (its 30
    days are still running), so a weekly email reports re-referral for this cohort,
    labelled with its week. Found by stepping back from the current week: five or six
    steps."""
    now = now or utcnow()
    week = week_of(now.astimezone(practice_zone()).date())
    while re_referral_settles_at(week.scope()) > now:
        week = week_of(week.first_day - timedelta(days=7))
    return week


def weeks_ending(period: Period, count: int = 12) -> list[Period]:
    """The `count` weeks up to and including the one `period` ends in, oldest first."""
    last = week_of(period.last_day)
    return [week_of(last.first_day - timedelta(weeks=n)) for n in range(count - 1, -1, -1)]


PERIOD_KINDS = ("week", "month", "custom")
LONGEST_CUSTOM_RANGE = timedelta(days=3 * 366)


def parse_period(
    kind: str,
    *,
    on: date | None = None,
    start: date | None = None,
    end: date | None = None,
    default: Period | None = None,
) -> Period:
    """The period a request asks for (?period=week|month|custom&on=...&start=&end=), from
    values already parsed and bounded at the boundary (portal.query_args). A custom range
    that runs backwards or spans more than three years is the default instead."""
    if kind == "week":
        return week_of(on or today() - timedelta(days=7))
    if kind == "month":
        return month_of(on or today().replace(day=1) - timedelta(days=1))
    if kind == "custom" and start and end and start <= end <= start + LONGEST_CUSTOM_RANGE:
        return Period("custom", start, end)
    return default or last_complete_week()
