"""Running clocks follow the business calendar an admin changes: a holiday declared
today moves tomorrow's due times, and nothing a request did meanwhile is undone."""

from __future__ import annotations

from datetime import date

from sqlalchemy import delete, select, update

from portal.clock import frozen_at
from portal.extensions import db
from portal.models import Holiday, JobState, OutboxMessage, SlaClock, Status
from portal.sla.clocks import active_clock, load_calendar
from portal.sla.retiming import TIMED_FOR, _retime, retime_running_clocks
from portal.sla.tasks import sweep
from tests.fixtures.desk import make_referral
from tests.integration.test_sla import at, referral_for, schedule_visit

TUESDAY = date(2026, 11, 24)  # the day after at(): Monday 23 November 2026


def close_on(day: date) -> None:
    db.session.add(Holiday(day=day, name="Closed"))
    db.session.commit()


def breach_pages() -> list[str]:
    return db.session.scalars(
        select(OutboxMessage.subject).where(OutboxMessage.subject.like("SLA breached%"))
    ).all()


def test_a_holiday_declared_while_a_clock_runs_moves_its_due_time(app, desk):
    """Monday 10:00 a routine referral arrives: first touch due Tuesday 10:00. Monday
    afternoon the admin closes the practice on Tuesday. Nothing breaches on the closed
    day; the clock falls due Wednesday 10:00."""
    with app.app_context():
        with frozen_at(at()):
            reference = make_referral(desk)
        assert active_clock(referral_for(reference)).due_at == at(days=1)
        with frozen_at(at(hours=4)):
            close_on(TUESDAY)
        with frozen_at(at(days=1, minutes=1)):
            assert sweep().breached == 0
            assert breach_pages() == []
        clock = active_clock(referral_for(reference))
        assert clock.due_at == at(days=2)
        assert clock.at_risk_at == at(hours=6)  # Monday 16:00, before the closed day
        with frozen_at(at(days=2, minutes=1)):
            assert sweep().breached == 1


def test_opening_hours_changed_move_a_running_clock(app, client_for, desk):
    with app.app_context(), frozen_at(at()):
        reference = make_referral(desk)
    hours = {"section": "hours", "hours-time_zone": "America/New_York"}
    for day in range(7):
        if day < 5:
            hours |= {f"hours-opens_{day}": "09:00", f"hours-closes_{day}": "13:00"}
        else:
            hours[f"hours-closed_{day}"] = "y"
    saved = client_for(desk.admin).post("/admin/sla", data=hours)
    assert saved.status_code == 302
    with app.app_context():
        with frozen_at(at(minutes=1)):
            sweep()
        # 480 business minutes from Monday 10:00 at four hours a day: Wednesday 10:00.
        assert active_clock(referral_for(reference)).due_at == at(days=2)


def test_a_clock_paused_while_it_was_being_timed_stays_paused(app, desk):
    with app.app_context(), frozen_at(at()):
        reference = make_referral(desk)
        clock = active_clock(referral_for(reference))
        close_on(TUESDAY)
        stale = db.session.get(SlaClock, clock.id)
        db.session.expunge(stale)
        # A request pauses the clock after the job read it.
        db.session.execute(
            update(SlaClock)
            .where(SlaClock.id == clock.id)
            .values(resumed_at=None, due_at=None, at_risk_at=None, used_minutes=5.0)
        )
        db.session.commit()
        assert not _retime(stale, load_calendar(checked=True), at())
        db.session.commit()
        paused = db.session.get(SlaClock, clock.id)
        assert paused.resumed_at is None and paused.due_at is None


def test_a_breach_already_tagged_is_not_moved_by_a_later_holiday(app, desk):
    with app.app_context():
        with frozen_at(at()):
            reference = make_referral(desk)
        with frozen_at(at(days=1, hours=1)):
            assert sweep().breached == 1
            close_on(TUESDAY)
            assert sweep().breached == 0
        clock = active_clock(referral_for(reference))
        assert clock.breached_at == at(days=1) and clock.due_at == at(days=1)


def test_visit_clocks_stored_with_an_early_at_risk_time_are_timed_again_once(app, desk):
    """Visit clocks stored before the at-risk point moved into the grace after the visit
    are timed again by the first sweep after the upgrade (no marker yet)."""
    with app.app_context():
        with frozen_at(at()):
            reference = make_referral(desk, Status.ACCEPTED)
            schedule_visit(desk, reference, at(days=14))
            clock = active_clock(referral_for(reference))
            clock.at_risk_at = at(days=1)  # as the older rule stored it
            db.session.execute(delete(JobState).where(JobState.name == TIMED_FOR))
            db.session.commit()
        with frozen_at(at(days=2)):
            assert sweep().at_risk == 0
            assert active_clock(referral_for(reference)).at_risk_at > at(days=14)
            assert retime_running_clocks() == 0  # timed for this calendar: nothing to do
