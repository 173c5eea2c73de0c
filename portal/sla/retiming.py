"""Running clocks follow the business calendar when an admin changes it.

A clock's due and at-risk times are stored when it starts or resumes (the sweep works
from them, indexed). An admin who closes the practice for a holiday, or changes its
hours or time zone, changes when every running clock falls due: without this, a clock
would breach on the holiday the admin just declared.

The sweep calls `retime_running_clocks` first. It compares the settings version
(portal/sla/settings_cache.py) with the one the running clocks were last timed for (a
JobState row) and, when they differ, times them again in batches: due and at-risk
times, and a visit clock's target (the business minutes to its appointment and grace).
Targets themselves stay as they were when each clock started, as the settings page
says. Each clock is written by one UPDATE conditional on the state it was timed from,
so a clock that a request paused, stopped or moved meanwhile is left as that request
left it. A breach already tagged is history and is never moved.

With no marker yet (a new deployment, or one upgraded from before this existed), the
first sweep times every running clock once: that also moves visit clocks stored with
the older, too-early at-risk time.
"""

from __future__ import annotations

import logging

from sqlalchemy import and_, select, update
from sqlalchemy.orm import selectinload

from portal.clock import utcnow
from portal.database import upsert_insert
from portal.extensions import db
from portal.models import JobState, SlaClock, SlaStage
from portal.sla.calendar import BusinessCalendar
from portal.sla.clocks import due_times, load_calendar, visit_target
from portal.sla.settings_cache import VERSION_ROW

log = logging.getLogger(__name__)

TIMED_FOR = "sla_clocks_timed_for"
BATCH = 500


def retime_running_clocks(batch: int = BATCH) -> int:
    """Time running clocks again if the calendar changed since they were last timed;
    how many moved. Commits each batch."""
    version = db.session.scalar(select(JobState.value).where(JobState.name == VERSION_ROW))
    marker = {"version": (version or {}).get("version")}
    if db.session.scalar(select(JobState.value).where(JobState.name == TIMED_FOR)) == marker:
        return 0
    calendar = load_calendar(checked=True)
    now = utcnow()
    moved, after = 0, 0
    while True:
        clocks = db.session.scalars(
            select(SlaClock)
            .options(selectinload(SlaClock.referral))
            .where(
                SlaClock.id > after,
                SlaClock.stopped_at.is_(None),
                SlaClock.resumed_at.is_not(None),
                SlaClock.breached_at.is_(None),
            )
            .order_by(SlaClock.id)
            .limit(batch)
        ).all()
        if not clocks:
            break
        moved += sum(_retime(clock, calendar, now) for clock in clocks)
        after = clocks[-1].id
        db.session.commit()
    statement = upsert_insert(db.session, JobState).values(
        name=TIMED_FOR, value=marker, updated_at=now
    )
    db.session.execute(
        statement.on_conflict_do_update(
            index_elements=["name"],
            set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at},
        )
    )
    db.session.commit()
    if moved:
        log.info("business calendar changed: %d running SLA clocks timed again", moved)
    return moved


def _retime(clock: SlaClock, calendar: BusinessCalendar, now) -> bool:
    """Store the clock's times in `calendar`, if it is still as it was read."""
    target = clock.target_minutes
    if clock.stage is SlaStage.VISIT and clock.referral.appointment_at is not None:
        target = visit_target(clock, clock.referral, calendar)
    due, at_risk = due_times(clock, calendar, target)
    if (due, at_risk, target) == (clock.due_at, clock.at_risk_at, clock.target_minutes):
        return False
    values = {"due_at": due, "at_risk_at": at_risk, "target_minutes": target}
    if clock.at_risk_tagged_at is not None and at_risk > now:
        values["at_risk_tagged_at"] = None  # at risk again, if at all, at the new time
    as_read = and_(
        SlaClock.id == clock.id,
        SlaClock.stopped_at.is_(None),
        SlaClock.breached_at.is_(None),
        SlaClock.resumed_at == clock.resumed_at,
        SlaClock.used_minutes == clock.used_minutes,
        SlaClock.target_minutes == clock.target_minutes,
    )
    return bool(
        db.session.execute(
            update(SlaClock)
            .where(as_read)
            .values(values)
            .execution_options(synchronize_session=False)
        ).rowcount
    )
