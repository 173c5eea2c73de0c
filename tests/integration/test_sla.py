"""SLA clocks: business-time targets, pauses in needs_info, at-risk and breach tagging."""

from __future__ import annotations

from datetime import datetime, timedelta
from html import unescape
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, func, select

from portal.clock import frozen_at
from portal.extensions import db
from portal.models import (
    AppointmentMode,
    OutboxMessage,
    Referral,
    ReferralEvent,
    SlaClock,
    SlaStage,
    Status,
    Urgency,
)
from portal.referrals import services
from portal.referrals.needs_info import InfoAnswer, answer_information, open_items
from portal.scorecard import metrics
from portal.scorecard.metrics import Scope
from portal.sla.clocks import active_clock, record_breach_reason
from portal.sla.tasks import check_coverage, find_dark_referrals, sweep
from tests.fixtures.desk import make_referral, user

NY = ZoneInfo("America/New_York")
MONDAY_10 = datetime(2026, 11, 23, 10, tzinfo=NY)  # a Monday, 10:00 at the practice


def at(days=0, hours=0, minutes=0) -> datetime:
    return MONDAY_10 + timedelta(days=days, hours=hours, minutes=minutes)


def referral_for(reference) -> Referral:
    return db.session.scalar(select(Referral).filter_by(reference=reference))


def test_a_routine_referral_gets_a_first_touch_clock_of_one_business_day(app, desk):
    with app.app_context(), frozen_at(at()):
        referral = referral_for(make_referral(desk))
        clock = active_clock(referral)
        assert (clock.stage, clock.owner_role.value) == (SlaStage.FIRST_TOUCH, "intake")
        assert clock.due_at == at(days=1)  # 8 business hours: Tuesday 10:00
        assert clock.at_risk_at == at(hours=6)  # 75 %


def test_urgent_targets_are_shorter_and_friday_evening_waits_for_monday(app, desk):
    friday_evening = datetime(2026, 11, 27, 18, tzinfo=NY)
    with app.app_context(), frozen_at(friday_evening):
        referral = referral_for(make_referral(desk, urgency=Urgency.URGENT))
        assert active_clock(referral).due_at == datetime(2026, 11, 30, 10, tzinfo=NY)


def test_each_stage_hands_over_to_the_next(app, desk):
    with app.app_context():
        with frozen_at(at()):
            referral = referral_for(make_referral(desk))
        with frozen_at(at(hours=1)):
            services.record_first_touch(referral, user(desk.intake), expected_version=None)
            triage = active_clock(referral)
            assert triage.stage is SlaStage.TRIAGE and triage.owner_role.value == "clinical"
            assert triage.due_at == at(days=2, hours=1)
        with frozen_at(at(hours=2)):
            services.accept(referral, user(desk.clinical), expected_version=None, provider="Dr")
            assert active_clock(referral).stage is SlaStage.NEXT_STEP
        stages = [c.stage for c in db.session.scalars(select(SlaClock).order_by(SlaClock.id))]
        assert stages == [SlaStage.FIRST_TOUCH, SlaStage.TRIAGE, SlaStage.NEXT_STEP]
        stopped = db.session.scalars(select(SlaClock).where(SlaClock.stopped_at.is_not(None)))
        assert [c.used_minutes for c in stopped] == [60, 60]


def test_needs_info_pauses_the_clock_and_the_answer_resumes_it(app, desk):
    with app.app_context():
        with frozen_at(at()):
            referral = referral_for(make_referral(desk, Status.IN_REVIEW))
        with frozen_at(at(hours=2)):  # two business hours of triage used
            from portal.referrals.needs_info import request_information

            request_information(
                referral,
                user(desk.intake),
                expected_version=None,
                required_item_ids=[],
                other_documents=[],
                other_questions=["Blood pressure"],
                message="",
            )
            clock = active_clock(referral)
            assert clock.is_paused and clock.due_at is None and clock.used_minutes == 120
        with frozen_at(at(days=2, hours=2)):  # Wednesday 12:00, two days later
            (item,) = open_items(referral)
            answer_information(
                referral,
                user(desk.partner_a),
                InfoAnswer(answers={item.id: "120/80"}),
                expected_version=None,
            )
            clock = active_clock(referral)
            assert referral.status is Status.IN_REVIEW and not clock.is_paused
            # 840 business minutes left from Wednesday 12:00: Friday 10:00.
            assert clock.due_at == datetime(2026, 11, 27, 10, tzinfo=NY)


def test_sweep_tags_at_risk_then_breach_once_and_tells_the_owner(app, desk):
    with app.app_context():
        with frozen_at(at()):
            reference = make_referral(desk)
        with frozen_at(at(hours=5)):
            assert (sweep().at_risk, sweep().breached) == (0, 0)
        with frozen_at(at(hours=6, minutes=1)):
            assert sweep().at_risk == 1
            assert sweep().at_risk == 0  # tagged once
        with frozen_at(at(days=1, minutes=1)):
            report = sweep()
            assert report.breached == 1 and check_coverage() == []
            assert sweep().breached == 0  # a second run finds nothing new
        clock = active_clock(referral_for(reference))
        assert clock.breached_at == at(days=1)
        kinds = [
            (e.kind, e.partner_visible)
            for e in db.session.scalars(select(ReferralEvent).order_by(ReferralEvent.id))
        ]
        assert ("sla_at_risk", False) in kinds and ("sla_breached", False) in kinds
        subjects = db.session.scalars(
            select(OutboxMessage.subject).where(
                OutboxMessage.recipient == app.config["INTAKE_TEAM_EMAIL"]
            )
        ).all()
        assert subjects == [f"SLA breached on referral {reference}: First touch"]


def schedule_visit(desk, reference, appointment_at: datetime) -> None:
    services.schedule(
        referral_for(reference),
        user(desk.intake),
        expected_version=None,
        appointment_at=appointment_at,
        mode=AppointmentMode.VIDEO,
    )
    db.session.commit()


def test_the_visit_clock_is_at_risk_only_in_the_grace_after_the_appointment(app, client_for, desk):
    with app.app_context(), frozen_at(at()):
        reference = make_referral(desk, Status.ACCEPTED)
        schedule_visit(desk, reference, at(days=14))
        clock = active_clock(referral_for(reference))
        # Eight business hours after the visit to record its outcome; at risk after six.
        assert (clock.at_risk_at, clock.due_at) == (at(days=14, hours=6), at(days=15))

    def listed_at_risk() -> bool:  # signed in at the frozen time, so the session is fresh
        page = client_for(desk.intake).get("/queue?sla=at_risk")
        assert page.status_code == 200
        return reference in page.get_data(as_text=True)

    def tagged_at_risk() -> int:
        with app.app_context():
            return sweep().at_risk

    with frozen_at(at(days=11)):  # three days before the visit: nothing to act on yet
        assert (tagged_at_risk(), listed_at_risk()) == (0, False)
    with frozen_at(at(days=14, hours=5)):
        assert (tagged_at_risk(), listed_at_risk()) == (0, False)
    with frozen_at(at(days=14, hours=6, minutes=1)):
        assert (tagged_at_risk(), listed_at_risk()) == (1, True)


def test_rescheduling_a_visit_moves_its_clock_and_its_at_risk_point(app, desk):
    with app.app_context():
        with frozen_at(at()):
            reference = make_referral(desk, Status.ACCEPTED)
            schedule_visit(desk, reference, at(hours=1))
        with frozen_at(at(hours=7, minutes=1)):  # six business hours after the visit
            assert sweep().at_risk == 1
            schedule_visit(desk, reference, at(days=14))
            clock = active_clock(referral_for(reference))
            assert (clock.at_risk_at, clock.due_at) == (at(days=14, hours=6), at(days=15))
            assert clock.at_risk_tagged_at is None  # at risk again against the new time
            assert db.session.scalar(select(func.count(SlaClock.id))) == 4  # one visit clock


def test_rescheduling_a_breached_visit_keeps_the_breach_and_starts_a_new_clock(
    app, client_for, desk
):
    week = Scope(at(), at(days=14))
    with app.app_context():
        with frozen_at(at()):
            reference = make_referral(desk, Status.ACCEPTED)
            schedule_visit(desk, reference, at(hours=2))
        with frozen_at(at(days=2)):
            assert sweep().breached == 1
            missed = active_clock(referral_for(reference))
            record_breach_reason(missed, "Volume or staffing", user(desk.intake))
            db.session.commit()
            schedule_visit(desk, reference, at(days=7))
            missed = db.session.get(SlaClock, missed.id)
            assert (missed.breached_at, missed.stopped_at) == (at(days=1, hours=2), at(days=2))
            assert missed.breach_reason == "Volume or staffing"
            running = active_clock(referral_for(reference))
            assert running.stage is SlaStage.VISIT and running.id != missed.id
            missed_id, running_id = missed.id, running.id
            assert (running.breached_at, running.due_at) == (None, at(days=8))
            assert find_dark_referrals() == []  # one clock runs, for the stage the status asks
            assert metrics.top_breach_reasons(week) == [("Visit outcome", "Volume or staffing", 1)]
        with frozen_at(at(days=9)):  # the new appointment's outcome is late too
            assert sweep().breached == 1
            assert metrics.top_breach_reasons(week) == [
                ("Visit outcome", "Not recorded yet", 1),
                ("Visit outcome", "Volume or staffing", 1),
            ]
    intake = client_for(desk.intake)
    page = unescape(intake.get(f"/referrals/{reference}").get_data(as_text=True))
    assert page.count("<strong>Visit outcome</strong> (owner: Intake) breached") == 2
    assert "Reason: Volume or staffing (" in page
    # The form asks about the new breach only: the first one has its reason.
    assert f"/breaches/{running_id}" in page and f"/breaches/{missed_id}" not in page
    response = intake.post(
        f"/referrals/{reference}/breaches/{running_id}", data={"reason": "Volume or staffing"}
    )
    assert response.status_code == 302
    with app.app_context():
        assert metrics.top_breach_reasons(week) == [("Visit outcome", "Volume or staffing", 2)]


def test_a_visit_rescheduled_after_its_deadline_counts_the_miss_the_sweep_had_not_seen(app, desk):
    with app.app_context():
        with frozen_at(at()):
            reference = make_referral(desk, Status.ACCEPTED)
            schedule_visit(desk, reference, at(hours=2))
            first = active_clock(referral_for(reference)).id
        with frozen_at(at(days=2)):  # due Tuesday 12:00; no sweep has run since
            schedule_visit(desk, reference, at(days=7))
            assert db.session.get(SlaClock, first).breached_at == at(days=1, hours=2)
            assert active_clock(referral_for(reference)).breached_at is None


def test_a_sweep_after_downtime_catches_up(app, desk):
    with app.app_context():
        with frozen_at(at()):
            make_referral(desk)
            make_referral(desk, urgency=Urgency.URGENT)
        with frozen_at(at(days=7)):
            assert sweep().breached == 2


def test_staff_record_a_breach_reason(app, client_for, desk):
    with app.app_context():
        with frozen_at(at()):
            reference = make_referral(desk)
        with frozen_at(at(days=2)):
            sweep()
        clock_id = active_clock(referral_for(reference)).id
    intake = client_for(desk.intake)
    page = intake.get(f"/referrals/{reference}").get_data(as_text=True)
    assert "Missed SLA targets" in page and "Why was the target missed?" in page
    response = intake.post(
        f"/referrals/{reference}/breaches/{clock_id}",
        data={"reason": "other", "other_reason": "Fax line down"},
    )
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(SlaClock, clock_id).breach_reason == "Fax line down"
    assert (
        client_for(desk.partner_a)
        .post(f"/referrals/{reference}/breaches/{clock_id}", data={"reason": "x"})
        .status_code
        == 404
    )


def test_queue_shows_clocks_and_filters_at_risk_breached_and_paused(app, client_for, desk):
    from portal.clock import utcnow

    now = utcnow()
    with app.app_context():
        with frozen_at(now - timedelta(days=10)):
            breached = make_referral(desk)
        paused = make_referral(desk, Status.NEEDS_INFO)
        fresh = make_referral(desk)
    client = client_for(desk.intake)
    html = client.get("/queue").get_data(as_text=True)
    assert "Overdue" in html and "Paused: waiting on the referring office" in html
    assert "left" in html

    def shown(sla):
        page = client.get(f"/queue?sla={sla}").get_data(as_text=True)
        return {r for r in (breached, paused, fresh) if r in page}

    assert shown("breached") == {breached}
    assert shown("paused") == {paused}


def test_partners_see_when_the_next_step_is_expected(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk)
    html = unescape(
        client_for(desk.partner_a).get(f"/referrals/{reference}").get_data(as_text=True)
    )
    assert "We aim to pick up your referral by" in html
    staff = client_for(desk.intake).get(f"/referrals/{reference}").get_data(as_text=True)
    assert 'id="sla-clock"' in staff and "First touch (Intake)" in staff


def test_the_partner_feedback_clock_stops_when_the_outcome_notice_is_delivered(app, desk):
    from portal.notifications.delivery import deliver_due_messages

    with app.app_context():
        referral = referral_for(make_referral(desk, Status.DECLINED))
        clock = active_clock(referral)
        assert clock.stage is SlaStage.PARTNER_FEEDBACK
        assert clock.owner_role.value == "partner_success"
        deliver_due_messages()
        assert active_clock(referral) is None
        assert find_dark_referrals() == []


def test_a_referral_without_a_clock_is_found_and_admins_are_told_once(app, desk):
    with app.app_context():
        reference = make_referral(desk, Status.ACCEPTED)
        db.session.execute(delete(SlaClock).where(SlaClock.stopped_at.is_(None)))
        db.session.commit()
        problems = find_dark_referrals()
        assert [(p.reference, p.problem) for p in problems] == [
            (reference, "open referral with no clock")
        ]
        check_coverage()
        check_coverage()
        alerts = db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.recipient == app.config["ADMIN_EMAIL"])
        ).all()
        assert len(alerts) == 1 and reference in alerts[0].body


@pytest.mark.parametrize("status", [s for s in Status if not s.is_final])
def test_every_open_status_has_an_owned_clock_with_a_due_time(app, desk, status):
    with app.app_context():
        make_referral(desk, status)
        assert find_dark_referrals() == []


def test_admin_edits_targets_hours_and_holidays(app, client_for, desk):
    admin = client_for(desk.admin)
    page = admin.get("/admin/sla").get_data(as_text=True)
    assert 'value="8.00"' in page  # routine first touch: one business day
    data = {"section": "targets"}
    for stage in ("first_touch", "triage", "next_step", "partner_feedback"):
        for urgency in ("urgent", "routine"):
            data[f"targets-{stage}__{urgency}"] = "2"
    assert admin.post("/admin/sla", data=data).status_code == 302
    hours = {"section": "hours", "hours-time_zone": "America/Chicago"}
    for day in range(7):
        if day < 6:
            hours |= {f"hours-opens_{day}": "08:00", f"hours-closes_{day}": "12:00"}
        else:
            hours[f"hours-closed_{day}"] = "y"
    assert admin.post("/admin/sla", data=hours).status_code == 302
    holiday = {"section": "holiday", "holiday-day": "2026-12-25", "holiday-name": "Christmas"}
    assert admin.post("/admin/sla", data=holiday).status_code == 302
    with app.app_context():
        from portal.sla.clocks import load_calendar, target_minutes

        calendar = load_calendar()
        assert calendar.zone.key == "America/Chicago"
        assert calendar.minutes_per_business_day == 240
        assert target_minutes(SlaStage.TRIAGE, Urgency.URGENT) == 120
        assert datetime(2026, 12, 25).date() in calendar.holidays
    bad = admin.post("/admin/sla", data={"section": "hours", "hours-time_zone": "Mars/Olympus"})
    assert bad.status_code == 422 and "Not a known time zone" in bad.get_data(as_text=True)


def test_admin_sees_and_retries_dead_letters(app, client_for, desk):
    from portal.models import MessageChannel, MessageStatus

    with app.app_context():
        message = OutboxMessage(
            channel=MessageChannel.EMAIL,
            recipient="x@example.org",
            subject="Hello",
            body="b",
            status=MessageStatus.DEAD,
            attempts=8,
            last_error="SMTP: 550 mailbox unavailable",
        )
        db.session.add(message)
        db.session.commit()
        message_id = message.id
    admin = client_for(desk.admin)
    assert "550 mailbox unavailable" in admin.get("/admin/outbox").get_data(as_text=True)
    assert admin.post(f"/admin/outbox/{message_id}/retry").status_code == 302
    with app.app_context():
        retried = db.session.get(OutboxMessage, message_id)
        assert retried.status is MessageStatus.PENDING and retried.attempts == 0
