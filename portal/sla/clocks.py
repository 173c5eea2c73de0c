"""Starting, pausing, resuming and stopping stage clocks as referrals move.

The clock a referral should have is a function of its status (`desired_stage`);
`sync_clock`, called by the workflow after every change, brings the stored clock in
line. So a clock cannot drift from the status machine: there is no second set of
rules to keep in step with it.
"""

from __future__ import annotations

from datetime import datetime, time
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import select

from portal.clock import utcnow
from portal.extensions import db
from portal.models import (
    BusinessHours,
    Holiday,
    Referral,
    SlaClock,
    SlaStage,
    SlaTarget,
    Status,
    Urgency,
)
from portal.sla.calendar import BusinessCalendar

BREACH_REASONS = [
    "Volume or staffing",
    "Waiting on clinical review",
    "Waiting on the referring office",
    "Patient could not be reached",
    "Missing or unclear records",
    "System or technical problem",
]


def _parse_hours(value) -> tuple[time, time] | None:
    if not value:
        return None
    opens, closes = value
    return time.fromisoformat(opens), time.fromisoformat(closes)


def load_calendar() -> BusinessCalendar:
    """The practice's calendar: the admin's week and holidays, or the configured default."""
    row = db.session.get(BusinessHours, 1)
    zone = row.time_zone if row else current_app.config["PRACTICE_TIME_ZONE"]
    weekly = row.weekly if row else current_app.config["BUSINESS_HOURS"]
    holidays = frozenset(db.session.scalars(select(Holiday.day)))
    return BusinessCalendar(
        zone=ZoneInfo(zone),
        hours={int(day): _parse_hours(hours) for day, hours in weekly.items()},
        holidays=holidays,
    )


def target_minutes(stage: SlaStage, urgency: Urgency) -> float:
    """The admin's target for the stage and urgency, or the configured default."""
    row = db.session.scalar(
        select(SlaTarget).where(SlaTarget.stage == stage, SlaTarget.urgency == urgency)
    )
    if row is not None:
        return row.business_minutes
    return float(current_app.config["SLA_TARGET_MINUTES"][(stage.value, urgency.value)])


def desired_stage(referral: Referral) -> SlaStage | None:
    """The stage whose clock an open referral should have (None once it is settled)."""
    status = referral.status
    if status is Status.SUBMITTED:
        return SlaStage.FIRST_TOUCH
    if status is Status.NEEDS_INFO:
        return SlaStage.FIRST_TOUCH if referral.first_touch_at is None else SlaStage.TRIAGE
    if status is Status.IN_REVIEW:
        return SlaStage.TRIAGE
    if status in (Status.ACCEPTED, Status.NO_SHOW):
        return SlaStage.NEXT_STEP
    if status is Status.SCHEDULED:
        return SlaStage.VISIT
    return None


def active_clock(referral: Referral) -> SlaClock | None:
    return db.session.scalar(
        select(SlaClock).where(SlaClock.referral_id == referral.id, SlaClock.stopped_at.is_(None))
    )


def sync_clock(referral: Referral, *, outcome_notified: bool = False) -> SlaClock | None:
    """Make the referral's clock match its status. Call after every status change.

    `outcome_notified`: the change reached an outcome and queued the partner's notice,
    which starts the partner-feedback clock (stopped when that notice is delivered).
    """
    now = utcnow()
    calendar = load_calendar()
    clock = active_clock(referral)
    stage = desired_stage(referral)
    if stage is None:
        if clock is not None and clock.stage is not SlaStage.PARTNER_FEEDBACK:
            _stop(clock, now, calendar)
            clock = None
        if outcome_notified and clock is None:
            return _start(referral, SlaStage.PARTNER_FEEDBACK, now, calendar, paused=False)
        return clock
    paused = referral.status is Status.NEEDS_INFO
    if clock is not None and clock.stage is stage:
        if paused and not clock.is_paused:
            _pause(clock, now, calendar)
        elif not paused and clock.is_paused:
            _resume(clock, now, calendar)
        elif stage is SlaStage.VISIT:
            _retarget_visit(clock, referral, calendar)
        return clock
    if clock is not None:
        _stop(clock, now, calendar)
    return _start(referral, stage, now, calendar, paused=paused)


def stop_partner_feedback(referral_id: int) -> None:
    """The partner's outcome notice was delivered: the feedback stage is done."""
    clock = db.session.scalar(
        select(SlaClock).where(
            SlaClock.referral_id == referral_id,
            SlaClock.stage == SlaStage.PARTNER_FEEDBACK,
            SlaClock.stopped_at.is_(None),
        )
    )
    if clock is not None:
        _stop(clock, utcnow(), load_calendar())


def _visit_due(referral: Referral, calendar: BusinessCalendar) -> datetime:
    grace = current_app.config["SLA_VISIT_OUTCOME_MINUTES"]
    return calendar.add_business_minutes(referral.appointment_at or utcnow(), grace)


def _start(
    referral: Referral,
    stage: SlaStage,
    now: datetime,
    calendar: BusinessCalendar,
    *,
    paused: bool,
) -> SlaClock:
    if stage is SlaStage.VISIT:
        target = calendar.business_minutes_between(now, _visit_due(referral, calendar))
    else:
        target = target_minutes(stage, referral.urgency)
    clock = SlaClock(
        referral_id=referral.id,
        stage=stage,
        owner_role=stage.owner,
        target_minutes=target,
        started_at=now,
        used_minutes=0.0,
    )
    db.session.add(clock)
    if not paused:
        _resume(clock, now, calendar)
    return clock


def _set_due(clock: SlaClock, calendar: BusinessCalendar) -> None:
    assert clock.resumed_at is not None
    left = clock.target_minutes - clock.used_minutes
    clock.due_at = calendar.add_business_minutes(clock.resumed_at, max(0.0, left))
    risk_point = clock.target_minutes * current_app.config["SLA_AT_RISK_FRACTION"]
    clock.at_risk_at = calendar.add_business_minutes(
        clock.resumed_at, max(0.0, risk_point - clock.used_minutes)
    )


def _resume(clock: SlaClock, now: datetime, calendar: BusinessCalendar) -> None:
    clock.resumed_at = now
    _set_due(clock, calendar)


def _pause(clock: SlaClock, now: datetime, calendar: BusinessCalendar) -> None:
    clock.used_minutes += calendar.business_minutes_between(clock.resumed_at, now)
    clock.resumed_at = clock.due_at = clock.at_risk_at = None


def _stop(clock: SlaClock, now: datetime, calendar: BusinessCalendar) -> None:
    if clock.resumed_at is not None:
        clock.used_minutes += calendar.business_minutes_between(clock.resumed_at, now)
        # Finished late before the sweep noticed: still a breach, for the record.
        if clock.due_at is not None and clock.due_at <= now and clock.breached_at is None:
            clock.breached_at = clock.due_at
    clock.stopped_at = now


def _retarget_visit(clock: SlaClock, referral: Referral, calendar: BusinessCalendar) -> None:
    """A moved appointment moves the visit clock's due time with it."""
    due = _visit_due(referral, calendar)
    if clock.due_at != due and clock.resumed_at is not None:
        clock.target_minutes = clock.used_minutes + calendar.business_minutes_between(
            clock.resumed_at, due
        )
        _set_due(clock, calendar)
        clock.at_risk_tagged_at = clock.breached_at = None


def breaches_of(referral: Referral) -> list[SlaClock]:
    return list(
        db.session.scalars(
            select(SlaClock)
            .where(SlaClock.referral_id == referral.id, SlaClock.breached_at.is_not(None))
            .order_by(SlaClock.breached_at)
        )
    )


def record_breach_reason(clock: SlaClock, reason: str, user) -> None:
    clock.breach_reason = reason[:200]
    clock.breach_reason_by_id = user.id


def business_minutes_left(clock: SlaClock, now: datetime | None = None) -> float | None:
    """Open minutes until the clock is due (negative: overdue); None while paused."""
    if clock.due_at is None:
        return None
    now = now or utcnow()
    calendar = load_calendar()
    if clock.due_at >= now:
        return calendar.business_minutes_between(now, clock.due_at)
    return -calendar.business_minutes_between(clock.due_at, now)
