"""Saving the business calendar and SLA targets an admin edits."""

from __future__ import annotations

from datetime import date, time

from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from portal.auditing import record_audit
from portal.clock import utcnow
from portal.extensions import db
from portal.localtime import forget_practice_zone
from portal.models import BusinessHours, Holiday, SlaStage, SlaTarget, Urgency, User
from portal.sla.clocks import load_calendar

# The stages with a target per urgency (the visit stage follows the appointment).
TARGET_STAGES = [
    SlaStage.FIRST_TOUCH,
    SlaStage.TRIAGE,
    SlaStage.NEXT_STEP,
    SlaStage.PARTNER_FEEDBACK,
]
WEEKDAYS = [
    _l("Monday"),
    _l("Tuesday"),
    _l("Wednesday"),
    _l("Thursday"),
    _l("Friday"),
    _l("Saturday"),
    _l("Sunday"),
]


def save_business_hours(
    time_zone: str, weekly: dict[int, tuple[time, time] | None], actor: User
) -> None:
    row = db.session.get(BusinessHours, 1) or BusinessHours(id=1)
    row.time_zone = time_zone
    row.weekly = {
        str(day): [hours[0].strftime("%H:%M"), hours[1].strftime("%H:%M")] if hours else None
        for day, hours in weekly.items()
    }
    db.session.add(row)
    forget_practice_zone()  # the rest of this request shows times in the new zone
    record_audit("settings.business_hours", actor=actor, time_zone=time_zone)


def save_targets(minutes: dict[tuple[SlaStage, Urgency], float], actor: User) -> None:
    existing = {(t.stage, t.urgency): t for t in db.session.scalars(select(SlaTarget))}
    for key, value in minutes.items():
        row = existing.get(key) or SlaTarget(stage=key[0], urgency=key[1])
        row.business_minutes = value
        db.session.add(row)
    record_audit("settings.sla_targets", actor=actor)


class HolidayRefused(ValueError):
    """The day cannot be added; the message says why (for the form's date field)."""


def practice_today() -> date:
    return utcnow().astimezone(load_calendar(checked=True).zone).date()


def add_holiday(day: date, name: str, actor: User) -> None:
    """Close the practice on `day` (from today on: a past day would change no clock the
    desk can act on, and the page lists only the days ahead, so it could not be seen
    or removed). HolidayRefused for a past day or one that is already a holiday."""
    if day < practice_today():
        raise HolidayRefused(gettext("That day has passed. Choose today or a later day."))
    existing = db.session.scalar(select(Holiday).where(Holiday.day == day))
    if existing is not None:
        raise HolidayRefused(
            gettext("That day is already a holiday: %(name)s.", name=existing.name)
        )
    try:
        with db.session.begin_nested():
            db.session.add(Holiday(day=day, name=name))
    except IntegrityError:  # another admin added it at the same moment
        raise HolidayRefused(gettext("That day is already a holiday.")) from None
    record_audit("settings.holiday_added", actor=actor, day=day.isoformat())


def remove_holiday(holiday: Holiday, actor: User) -> None:
    record_audit("settings.holiday_removed", actor=actor, day=holiday.day.isoformat())
    db.session.delete(holiday)


def upcoming_holidays() -> list[Holiday]:
    return list(
        db.session.scalars(
            select(Holiday).where(Holiday.day >= practice_today()).order_by(Holiday.day)
        )
    )
