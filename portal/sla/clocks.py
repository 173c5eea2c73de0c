"""Starting, pausing, resuming and stopping stage clocks as referrals move.

The clock a referral should have is a function of its status (`desired_stage`);
`sync_clock`, called by the workflow after every change, brings the stored clock in
line. So a clock cannot drift from the status machine: there is no second set of
rules to keep in step with it.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import Case, and_, case, select, update

from portal.clock import utcnow
from portal.extensions import db
from portal.models import Referral, SlaClock, SlaStage, Status, Urgency
from portal.sla.calendar import BusinessCalendar
from portal.sla.settings_cache import practice_settings

# What is recorded (the English, as it always was) -> what the list shows.
BREACH_REASONS = {
    "Volume or staffing": _l("Volume or staffing"),
    "Waiting on clinical review": _l("Waiting on clinical review"),
    "Waiting on the referring office": _l("Waiting on the referring office"),
    "Patient could not be reached": _l("Patient could not be reached"),
    "Missing or unclear records": _l("Missing or unclear records"),
    "System or technical problem": _l("System or technical problem"),
}


def load_calendar(*, checked: bool = False) -> BusinessCalendar:
    """The practice's calendar: the admin's week and holidays, or the configured default.
    `checked`: read as saved now, not as this process last checked it, for times that
    are stored (a due time, a reminder) and for the admin's own settings page: they
    follow a save at once in every process (portal/sla/settings_cache.py)."""
    return practice_settings(checked=checked).calendar()


def target_minutes(stage: SlaStage, urgency: Urgency, *, checked: bool = False) -> float:
    """The admin's target for the stage and urgency, or the configured default."""
    return _minutes(stage, urgency, practice_settings(checked=checked).targets)


def all_target_minutes() -> dict[tuple[SlaStage, Urgency], float]:
    """Every target `target_minutes` gives (each stage with a target, each urgency)."""
    targets = practice_settings().targets
    return {
        (stage, urgency): _minutes(stage, urgency, targets)
        for stage, urgency in (
            (SlaStage(s), Urgency(u)) for s, u in current_app.config["SLA_TARGET_MINUTES"]
        )
    }


def _minutes(
    stage: SlaStage, urgency: Urgency, targets: Mapping[tuple[SlaStage, Urgency], float]
) -> float:
    if (stage, urgency) in targets:
        return targets[stage, urgency]
    return float(current_app.config["SLA_TARGET_MINUTES"][(stage.value, urgency.value)])


# Which stage's clock an open referral runs: the one rule, read by the clocks here and
# turned into SQL for the sweep's "no referral goes dark" check (`desired_stage_sql`).
# Each row: status, whether intake has touched it (None: either way), the stage.
STAGE_RULES: tuple[tuple[Status, bool | None, SlaStage], ...] = (
    (Status.SUBMITTED, None, SlaStage.FIRST_TOUCH),
    (Status.NEEDS_INFO, False, SlaStage.FIRST_TOUCH),
    (Status.NEEDS_INFO, True, SlaStage.TRIAGE),
    (Status.IN_REVIEW, None, SlaStage.TRIAGE),
    (Status.ACCEPTED, None, SlaStage.NEXT_STEP),
    (Status.NO_SHOW, None, SlaStage.NEXT_STEP),
    (Status.SCHEDULED, None, SlaStage.VISIT),
)
# The clock waits while the partner owes us information.
PAUSED_STATUSES = frozenset({Status.NEEDS_INFO})

# How an open clock stands, the first row that holds: paused (no resumed_at), breached
# (due_at passed), at risk (at_risk_at passed), else "ok". The referral page reads it in
# Python (`clock_state`), the queue filters on it in SQL (`clock_state_sql`).
CLOCK_STATE_RULES: tuple[tuple[str, str, bool], ...] = (
    ("paused", "resumed_at", False),  # False: the column is empty
    ("breached", "due_at", True),  # True: the column's time has come
    ("at_risk", "at_risk_at", True),
)
CLOCK_STATES = tuple(state for state, _column, _passed in CLOCK_STATE_RULES)


def clock_state(clock: SlaClock, now: datetime) -> str:
    for state, column, passed in CLOCK_STATE_RULES:
        value = getattr(clock, column)
        if (value is not None and value <= now) if passed else value is None:
            return state
    return "ok"


def clock_state_sql(now: datetime) -> Case:
    """`clock_state` as SQL over SlaClock's columns."""
    whens = []
    for state, column, passed in CLOCK_STATE_RULES:
        value = getattr(SlaClock, column)
        whens.append((value <= now if passed else value.is_(None), state))
    return case(*whens, else_="ok")


def desired_stage(referral: Referral) -> SlaStage | None:
    """The stage whose clock an open referral should have (None once it is settled)."""
    touched = referral.first_touch_at is not None
    for status, when_touched, stage in STAGE_RULES:
        if referral.status is status and when_touched in (None, touched):
            return stage
    return None


def desired_stage_sql() -> Case:
    """`desired_stage` as a SQL expression over the referral's columns."""
    whens = []
    for status, when_touched, stage in STAGE_RULES:
        condition = Referral.status == status
        if when_touched is not None:
            touched = Referral.first_touch_at.is_not(None)
            condition = and_(condition, touched if when_touched else ~touched)
        whens.append((condition, stage.value))
    return case(*whens, else_=None)


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
    calendar = load_calendar(checked=True)
    clock = active_clock(referral)
    stage = desired_stage(referral)
    if stage is None:
        if clock is not None and clock.stage is not SlaStage.PARTNER_FEEDBACK:
            _stop(clock, now, calendar)
            clock = None
        if outcome_notified and clock is None:
            return _start(referral, SlaStage.PARTNER_FEEDBACK, now, calendar, paused=False)
        return clock
    paused = referral.status in PAUSED_STATUSES
    if clock is not None and clock.stage is stage:
        if paused and not clock.is_paused:
            _pause(clock, now, calendar)
        elif not paused and clock.is_paused:
            _resume(clock, now, calendar)
        elif stage is SlaStage.VISIT:
            return _retarget_visit(clock, referral, now, calendar)
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
        _stop(clock, utcnow(), load_calendar(checked=True))


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
        target = target_minutes(stage, referral.urgency, checked=True)
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


def due_times(
    clock: SlaClock, calendar: BusinessCalendar, target_minutes: float | None = None
) -> tuple[datetime, datetime]:
    """When the running `clock` is due and when it is at risk, in `calendar`, for its
    target (or `target_minutes`): from when it last resumed, less the minutes used."""
    assert clock.resumed_at is not None
    target = clock.target_minutes if target_minutes is None else target_minutes
    due = calendar.add_business_minutes(clock.resumed_at, max(0.0, target - clock.used_minutes))
    # At risk once a fraction of the time the owner can act in is used. For a visit that
    # is the grace after the appointment, not the wait before it: the outcome cannot be
    # recorded until the visit has happened.
    acting = target
    if clock.stage is SlaStage.VISIT:
        acting = min(acting, current_app.config["SLA_VISIT_OUTCOME_MINUTES"])
    waiting = target - acting
    risk_point = waiting + acting * current_app.config["SLA_AT_RISK_FRACTION"]
    at_risk = calendar.add_business_minutes(
        clock.resumed_at, max(0.0, risk_point - clock.used_minutes)
    )
    return due, at_risk


def visit_target(clock: SlaClock, referral: Referral, calendar: BusinessCalendar) -> float:
    """A running visit clock's target in `calendar`: the minutes it has used, and the
    business minutes from its last resume to the appointment and its grace."""
    return clock.used_minutes + calendar.business_minutes_between(
        clock.resumed_at, _visit_due(referral, calendar)
    )


def _set_due(clock: SlaClock, calendar: BusinessCalendar) -> None:
    clock.due_at, clock.at_risk_at = due_times(clock, calendar)


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


def _retarget_visit(
    clock: SlaClock, referral: Referral, now: datetime, calendar: BusinessCalendar
) -> SlaClock:
    """A moved appointment moves the visit clock's due time with it, and returns the
    clock that now runs.

    A clock already breached keeps its breach, and the reason staff record for it, as
    history: it stops, and a new visit clock runs for the new appointment.
    """
    due = _visit_due(referral, calendar)
    if clock.due_at == due or clock.resumed_at is None:
        return clock
    if clock.breached_at is not None or (clock.due_at is not None and clock.due_at <= now):
        if due <= now:  # still missed: the same breach, not a second one
            return clock
        _stop(clock, now, calendar)  # records a breach the sweep has not tagged yet
        return _start(referral, SlaStage.VISIT, now, calendar, paused=False)
    clock.target_minutes = visit_target(clock, referral, calendar)
    _set_due(clock, calendar)
    clock.at_risk_tagged_at = None  # at risk again, if at all, against the new time
    return clock


def record_breach_reason(clock: SlaClock, reason: str, user) -> bool:
    """Record why the clock's target was missed, unless a reason is already recorded
    (two people answering at once: the first one stands). Whether it was recorded."""
    recorded = db.session.execute(
        update(SlaClock)
        .where(SlaClock.id == clock.id, SlaClock.breach_reason.is_(None))
        .values(breach_reason=reason[:200], breach_reason_by_id=user.id)
        .execution_options(synchronize_session=False)
    ).rowcount
    db.session.refresh(clock)
    return recorded == 1
