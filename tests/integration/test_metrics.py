"""Each scorecard figure on hand-built data whose answers are known."""

from __future__ import annotations

import secrets
from datetime import UTC, date, datetime, timedelta

import pytest

from portal.extensions import db
from portal.models import (
    Channel,
    ContactMethod,
    OutreachAttempt,
    OutreachResult,
    Referral,
    ReferralEvent,
    SlaClock,
    SlaStage,
    Status,
    Urgency,
    User,
)
from portal.models.user import Role
from portal.scorecard import metrics
from portal.scorecard.metrics import Scope

WEEK_START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
WEEK = Scope(WEEK_START, WEEK_START + timedelta(days=7))
NOW = datetime(2026, 12, 31, tzinfo=UTC)


def referral(desk, submitted_at, *, partner_id=None, status=Status.SUBMITTED, **fields):
    submitter = db.session.query(User).filter_by(role=Role.PARTNER).first()
    row = Referral(
        reference=f"R-{secrets.token_hex(2).upper()}-{secrets.token_hex(2).upper()}"[:11],
        partner_id=partner_id or desk.partner_a_id,
        service_line_id=desk.sleep_id,
        status=status,
        urgency=Urgency.ROUTINE,
        referring_provider_name="Dr",
        referring_provider_npi="1234567893",
        patient_first_name="Test",
        patient_last_name="Patient",
        patient_date_of_birth=date(1970, 1, 1),
        preferred_contact=ContactMethod.PHONE,
        patient_phone="+12025550111",
        reason="r",
        source_channel=Channel.PORTAL,
        submitted_by_id=submitter.id,
        submission_token=secrets.token_hex(8),
        submitted_at=submitted_at,
        updated_at=submitted_at,
        **fields,
    )
    db.session.add(row)
    db.session.flush()
    return row


def hours_after(moment, hours):
    return moment + timedelta(hours=hours)


def test_first_touch_median_and_90th_percentile(app, desk):
    with app.app_context():
        for hours in (1, 2, 3, 4, 5, 6, 7, 8, 9, 10):
            start = WEEK_START + timedelta(hours=hours)
            referral(desk, start, first_touch_at=hours_after(start, hours))
        referral(desk, WEEK_START + timedelta(hours=1))  # not touched yet: not counted
        referral(desk, WEEK_START - timedelta(hours=1), first_touch_at=WEEK_START)  # last week
        db.session.commit()
        result = metrics.first_touch_time(WEEK)
        # Over 1..10 h: the median is the mean of the 5th and 6th values, the 90th
        # percentile (nearest rank) the ceil(0.9 * 10) = 9th.
        assert (result.median_hours, result.p90_hours, result.touched) == (5.5, 9.0, 10)


def test_conversion_is_completed_over_submitted_for_the_cohort(app, desk):
    with app.app_context():
        for status in (Status.COMPLETED, Status.COMPLETED, Status.DECLINED, Status.ACCEPTED):
            referral(desk, WEEK_START + timedelta(days=1), status=status)
        referral(desk, WEEK_START - timedelta(days=1), status=Status.COMPLETED)  # other cohort
        db.session.commit()
        conversion = metrics.started_care_conversion(WEEK)
        assert (conversion.completed, conversion.submitted, conversion.rate) == (2, 4, 0.5)


def test_cycle_time_is_for_referrals_that_reached_an_outcome_in_the_period(app, desk):
    with app.app_context():
        earlier = WEEK_START - timedelta(days=10)
        referral(desk, earlier, status=Status.COMPLETED, outcome_at=earlier + timedelta(days=11))
        referral(desk, earlier, status=Status.DECLINED, outcome_at=earlier + timedelta(days=12))
        referral(desk, earlier, status=Status.DECLINED, outcome_at=earlier + timedelta(days=13))
        referral(desk, WEEK_START, status=Status.ACCEPTED)  # no outcome yet: not counted
        db.session.commit()
        assert metrics.median_cycle_time_hours(WEEK) == 12 * 24


def test_incomplete_rate_counts_referrals_that_ever_entered_needs_info(app, desk):
    with app.app_context():
        once = referral(desk, WEEK_START, status=Status.IN_REVIEW)
        once.needs_info_at = WEEK_START  # the workflow's milestone (see test_needs_info)
        db.session.add(
            ReferralEvent(
                referral_id=once.id,
                at=WEEK_START,
                kind="needs_info",
                to_status=Status.NEEDS_INFO,
                partner_visible=True,
                summary="x",
            )
        )
        for _ in range(3):
            referral(desk, WEEK_START)
        db.session.commit()
        share = metrics.incomplete_rate(WEEK)
        assert (share.part, share.whole, share.rate) == (1, 4, 0.25)


def test_re_referral_counts_only_cohorts_whose_30_days_have_elapsed(app, desk):
    with app.app_context():
        followed = referral(desk, WEEK_START)
        referral(desk, WEEK_START + timedelta(days=29))  # within 30 days of `followed`
        referral(desk, WEEK_START + timedelta(days=1), partner_id=desk.partner_b_id)  # alone
        db.session.commit()
        share = metrics.re_referral_rate(WEEK, now=NOW)
        assert (share.part, share.whole) == (1, 2)
        # Two weeks after the period, nobody's 30 days have passed: nothing to judge yet.
        too_soon = metrics.re_referral_rate(WEEK, now=WEEK.end + timedelta(days=14))
        assert (too_soon.part, too_soon.whole, too_soon.rate) == (0, 0, None)
        assert followed.id


def test_breach_reasons_by_stage_most_first(app, desk):
    with app.app_context():
        row = referral(desk, WEEK_START)
        for stage, reason in [
            (SlaStage.TRIAGE, "Waiting on clinical review"),
            (SlaStage.TRIAGE, "Waiting on clinical review"),
            (SlaStage.FIRST_TOUCH, None),
        ]:
            db.session.add(
                SlaClock(
                    referral_id=row.id,
                    stage=stage,
                    owner_role=stage.owner,
                    target_minutes=60,
                    started_at=WEEK_START,
                    breached_at=WEEK_START + timedelta(hours=2),
                    stopped_at=WEEK_START + timedelta(hours=3),
                    breach_reason=reason,
                )
            )
        db.session.commit()
        assert metrics.top_breach_reasons(WEEK) == [
            ("Triage", "Waiting on clinical review", 2),
            ("First touch", "Not recorded yet", 1),
        ]


def test_funnel_and_reasons_referrals_did_not_convert(app, desk):
    with app.app_context():
        reached = WEEK_START + timedelta(hours=5)
        done = referral(
            desk,
            WEEK_START,
            status=Status.COMPLETED,
            patient_reached_at=reached,
            scheduled_at=reached,
        )
        tried = referral(desk, WEEK_START, status=Status.UNREACHABLE)
        clinician = db.session.query(User).filter_by(role=Role.INTAKE).first()
        db.session.add(
            OutreachAttempt(
                referral_id=tried.id,
                at=reached,
                actor_id=clinician.id,
                channel=ContactMethod.PHONE,
                result=OutreachResult.NO_ANSWER,
            )
        )
        referral(desk, WEEK_START, status=Status.DECLINED)
        referral(desk, WEEK_START, status=Status.SUBMITTED)
        db.session.commit()
        assert metrics.funnel(WEEK) == [
            ("Received", 4),
            ("Contact attempted", 2),
            ("Patient reached", 1),
            ("Scheduled", 1),
            ("Completed", 1),
        ]
        reasons = dict(metrics.not_converted_reasons(WEEK))
        assert reasons["Eligibility mismatch"] == 1 and reasons["Unreachable"] == 1
        assert done.id


@pytest.mark.parametrize(
    "figure",
    [
        lambda s: metrics.first_touch_time(s).median_hours,
        lambda s: metrics.started_care_conversion(s).rate,
        metrics.median_cycle_time_hours,
        lambda s: metrics.incomplete_rate(s).rate,
        lambda s: metrics.re_referral_rate(s).rate,
    ],
)
def test_an_empty_period_has_no_figures_rather_than_zero(app, desk, figure):
    with app.app_context():
        assert figure(WEEK) is None
        assert metrics.top_breach_reasons(WEEK) == []
        assert metrics.partner_months(WEEK) == []


def test_partner_months_and_league_table(app, desk):
    with app.app_context():
        clinician = db.session.query(User).filter_by(role=Role.INTAKE).first()
        for hours in (2, 4, 6):
            row = referral(
                desk,
                WEEK_START,
                status=Status.SCHEDULED,
                triaged_at=WEEK_START,
                scheduled_at=WEEK_START + timedelta(days=1),
            )
            db.session.add(
                OutreachAttempt(
                    referral_id=row.id,
                    at=WEEK_START + timedelta(hours=hours),
                    actor_id=clinician.id,
                    channel=ContactMethod.PHONE,
                    result=OutreachResult.REACHED,
                )
            )
        referral(desk, WEEK_START, status=Status.ACCEPTED, triaged_at=WEEK_START)
        referral(desk, WEEK_START, partner_id=desk.partner_b_id, status=Status.COMPLETED)
        db.session.commit()
        (alpha, beta) = sorted(metrics.partner_months(WEEK), key=lambda r: r.partner)
        assert (alpha.month, alpha.referrals) == (date(2026, 11, 1), 4)
        assert alpha.median_hours_to_first_contact == 4.0
        assert alpha.scheduling_completion == 0.75
        assert (beta.referrals, beta.median_hours_to_first_contact) == (1, None)
        league = metrics.league_table(WEEK, now=NOW)
        assert [row.partner for row in league] == ["Alpha Primary Care", "Beta Cardiology"]
        assert (league[0].conversion, league[1].conversion) == (0.0, 1.0)


def test_a_paused_needs_info_clock_is_not_a_breach(app, desk):
    with app.app_context():
        row = referral(desk, WEEK_START, status=Status.NEEDS_INFO)
        db.session.add(
            SlaClock(
                referral_id=row.id,
                stage=SlaStage.FIRST_TOUCH,
                owner_role=SlaStage.FIRST_TOUCH.owner,
                target_minutes=60,
                started_at=WEEK_START,
                used_minutes=30,
            )
        )
        db.session.commit()
        assert metrics.top_breach_reasons(WEEK) == []


def test_trend_cohorts_give_each_week_its_own_figures(app, desk):
    """The 12-week trend computes all weeks in one pass; each week must read exactly as
    the same figure asked for that week alone (an empty week included)."""
    weeks = [
        Scope(WEEK_START + timedelta(days=7 * i), WEEK_START + timedelta(days=7 * (i + 1)))
        for i in range(3)
    ]
    with app.app_context():
        # Week 0: touched after 1 h (and completed) and after 3 h (and incomplete): the
        # median of the two is 2 h.
        referral(
            desk,
            weeks[0].start + timedelta(hours=5),
            status=Status.COMPLETED,
            first_touch_at=weeks[0].start + timedelta(hours=6),
            outcome_at=weeks[0].start + timedelta(days=2),
        )
        referral(
            desk,
            weeks[0].start + timedelta(hours=6),
            first_touch_at=weeks[0].start + timedelta(hours=9),
            needs_info_at=weeks[0].start + timedelta(hours=7),
        )
        # week 1 is empty; week 2 has one untouched referral, sent on the week's last second
        referral(desk, weeks[2].end - timedelta(seconds=1))
        db.session.commit()

        cohorts = metrics.Cohorts.of(weeks)
        assert [t.median_hours for t in metrics.first_touch_by_cohort(cohorts)] == [
            metrics.first_touch_time(week).median_hours for week in weeks
        ]
        assert [t.median_hours for t in metrics.first_touch_by_cohort(cohorts)] == [2.0, None, None]
        assert [(c.completed, c.submitted) for c in metrics.conversion_by_cohort(cohorts)] == [
            (1, 2),
            (0, 0),
            (0, 1),
        ]
        assert [(s.part, s.whole) for s in metrics.incomplete_by_cohort(cohorts)] == [
            (1, 2),
            (0, 0),
            (0, 1),
        ]
        re_referral = [s.rate for s in metrics.re_referral_by_cohort(cohorts, NOW)]
        assert re_referral == [metrics.re_referral_rate(week, NOW).rate for week in weeks]
        # Both of week 0 were followed (1 h, then 20 days later); week 2 by nothing yet.
        assert re_referral == [1.0, None, 0.0]
        with pytest.raises(ValueError, match="consecutive"):
            metrics.Cohorts.of([weeks[0], weeks[2]])
