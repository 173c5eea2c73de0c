"""How a clock reads on a page: "2 h 10 min left", "Overdue 35 min", "Paused"."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from flask_babel import gettext, ngettext
from flask_babel import lazy_gettext as _l

from portal.formatting import format_moment
from portal.models import Role, SlaStage
from portal.sla.calendar import BusinessCalendar
from portal.sla.clocks import clock_state


class ClockTimes(Protocol):
    """What describing a clock reads: an SlaClock, or a queue row carrying its clock's
    columns under the same names."""

    stage: SlaStage
    owner_role: Role
    resumed_at: datetime | None
    due_at: datetime | None
    at_risk_at: datetime | None


@dataclass(frozen=True, slots=True)
class ClockView:
    stage: str
    owner: str
    text: str
    tone: str  # "ok", "at-risk", "breached", "paused"
    due_at: datetime | None
    # The queue's tooltip: "Triage, owner Clinical, due Mon, Nov 30, 2026, 2:30 PM EST".
    title: str


class ClockDescriber:
    """Describes the clocks of one page at one moment.

    What every clock shares is worked out once a page rather than once a clock (a
    queue page has fifty): the calendar's business-day length and the translated
    wording, filled in with `%` as gettext itself does.
    """

    def __init__(self, calendar: BusinessCalendar, now: datetime) -> None:
        self.calendar = calendar
        self.now = now
        self.per_day = calendar.minutes_per_business_day
        self.paused = gettext("Paused: waiting on the referring office")
        self.overdue = gettext("Overdue %(time)s")
        self.left = gettext("%(time)s left")
        self.hours = gettext("%(hours)s h")
        self.hours_and_minutes = gettext("%(hours)s h %(minutes)s min")
        self.minutes = gettext("%(minutes)s min")
        self.title = gettext("%(stage)s, owner %(owner)s")
        self.title_with_due = gettext("%(stage)s, owner %(owner)s, due %(due_at)s")
        self._days: dict[int, str] = {}

    def __call__(self, clock: ClockTimes) -> ClockView:
        stage, owner, due_at = clock.stage.label, clock.owner_role.label, clock.due_at
        if due_at is None:
            title = self.title % {"stage": stage, "owner": owner}
        else:
            title = self.title_with_due % {
                "stage": stage,
                "owner": owner,
                "due_at": format_moment(due_at),
            }
        state = clock_state(clock, self.now)
        if state == "paused" or due_at is None:
            return ClockView(stage, owner, self.paused, "paused", due_at, title)
        if state == "breached":
            overdue = self.calendar.business_minutes_between(due_at, self.now)
            text = self.overdue % {"time": self._duration(overdue)}
            return ClockView(stage, owner, text, "breached", due_at, title)
        left = self.calendar.business_minutes_between(self.now, due_at)
        text = self.left % {"time": self._duration(left)}
        tone = "at-risk" if state == "at_risk" else "ok"
        return ClockView(stage, owner, text, tone, due_at, title)

    def _duration(self, minutes: float) -> str:
        minutes = int(round(minutes))
        per_day = self.per_day
        if per_day and minutes >= per_day:
            days, rest = divmod(minutes, int(per_day))
            text = self._business_days(days)
            if rest >= 60:
                text += " " + self.hours % {"hours": rest // 60}
            return text
        hours, rest = divmod(minutes, 60)
        if hours:
            return self.hours_and_minutes % {"hours": hours, "minutes": rest}
        return self.minutes % {"minutes": rest}

    def _business_days(self, days: int) -> str:
        # The plural form depends on the number: looked up once per number a page shows.
        if days not in self._days:
            self._days[days] = ngettext("%(num)d business day", "%(num)d business days", days)
        return self._days[days]


def describe_clock(clock: ClockTimes, calendar: BusinessCalendar, now: datetime) -> ClockView:
    """How one clock reads now (a page with many: one ClockDescriber for them all)."""
    return ClockDescriber(calendar, now)(clock)


# What the referring office is told to expect, by the stage now running.
PARTNER_PROMISES = {
    SlaStage.FIRST_TOUCH: _l("We aim to pick up your referral by"),
    SlaStage.TRIAGE: _l("We aim to complete the clinical review by"),
    SlaStage.NEXT_STEP: _l("We aim to contact your patient with a next step by"),
}
