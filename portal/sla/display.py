"""How a clock reads on a page: "2 h 10 min left", "Overdue 35 min", "Paused"."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask_babel import gettext, ngettext
from flask_babel import lazy_gettext as _l

from portal.models import SlaClock, SlaStage
from portal.sla.calendar import BusinessCalendar
from portal.sla.clocks import clock_state


@dataclass(frozen=True)
class ClockView:
    stage: str
    owner: str
    text: str
    tone: str  # "ok", "at-risk", "breached", "paused"
    due_at: datetime | None


def _duration(minutes: float, per_day: float) -> str:
    minutes = int(round(minutes))
    if per_day and minutes >= per_day:
        days, rest = divmod(minutes, int(per_day))
        text = ngettext("%(num)d business day", "%(num)d business days", days)
        if rest >= 60:
            text += " " + gettext("%(hours)s h", hours=rest // 60)
        return text
    hours, rest = divmod(minutes, 60)
    if hours:
        return gettext("%(hours)s h %(minutes)s min", hours=hours, minutes=rest)
    return gettext("%(minutes)s min", minutes=rest)


def describe_clock(clock: SlaClock, calendar: BusinessCalendar, now: datetime) -> ClockView:
    base = {"stage": clock.stage.label, "owner": clock.owner_role.label, "due_at": clock.due_at}
    state = clock_state(clock, now)
    if state == "paused" or clock.due_at is None:
        return ClockView(
            text=gettext("Paused: waiting on the referring office"), tone="paused", **base
        )
    per_day = calendar.minutes_per_business_day
    if state == "breached":
        overdue = calendar.business_minutes_between(clock.due_at, now)
        return ClockView(
            text=gettext("Overdue %(time)s", time=_duration(overdue, per_day)),
            tone="breached",
            **base,
        )
    left = calendar.business_minutes_between(now, clock.due_at)
    tone = "at-risk" if state == "at_risk" else "ok"
    return ClockView(
        text=gettext("%(time)s left", time=_duration(left, per_day)), tone=tone, **base
    )


# What the referring office is told to expect, by the stage now running.
PARTNER_PROMISES = {
    SlaStage.FIRST_TOUCH: _l("We aim to pick up your referral by"),
    SlaStage.TRIAGE: _l("We aim to complete the clinical review by"),
    SlaStage.NEXT_STEP: _l("We aim to contact your patient with a next step by"),
}
