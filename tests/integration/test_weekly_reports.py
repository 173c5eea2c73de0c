"""The weekly scorecard emails: every referring office gets its own figures for last
week, partner success gets everyone's, and each goes exactly once whatever restarts,
crashes and second runs happen in between."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import delete, func, select

from portal.clock import frozen_at
from portal.extensions import db
from portal.models import JobState, OutboxMessage, Partner, Referral, Role, Status
from portal.notifications.delivery import deliver_due_messages
from portal.scorecard import tasks
from portal.scorecard.periods import latest_re_referral_week, week_of
from portal.scorecard.report import display, one_table
from portal.scorecard.tables import SUMMARY
from portal.scorecard.tasks import (
    STATE_NAME,
    send_weekly_scorecards,
    weekly_emails,
    weekly_message_key,
)
from tests.fixtures.desk import make_referral
from tests.fixtures.privacy import find_patient_data_in_messages
from tests.integration.test_metrics import referral as metrics_referral

NOW = datetime(2026, 11, 23, 15, tzinfo=UTC)  # Monday, 10 AM in New York
LAST_WEEK = week_of(date(2026, 11, 16))  # Nov 16-22 in New York
COHORT = "referrals of the week of Oct 12, 2026, the latest week whose 30 days have passed"
DASHBOARD = "/dashboard?period=week&on=2026-11-16"
EMAILED_FIGURES = (
    "submitted_referrals",
    "first_touch_median_hours",
    "first_touch_p90_hours",
    "started_care_percent",
    "incomplete_percent",
)
ALPHA, BETA, GAMMA = "contact@alpha.example", "contact@beta.example", "contact@gamma.example"


def referral(desk, submitted_at: datetime, **fields) -> Referral:
    """A hand-built referral (test_metrics), its patient named so that no email could
    hold the name by chance (the privacy check looks for it in every message)."""
    row = metrics_referral(desk, submitted_at, **fields)
    row.patient_first_name, row.patient_last_name = "Wilhelmina", "Quarrington"
    return row


def office(name: str, contact: str, email: str, *, active: bool = True) -> Partner:
    return Partner(
        name=name,
        specialty="Primary care",
        referral_contact_name=contact,
        referral_contact_email=email,
        active=active,
    )


def at(month: int, day: int, hour: int = 14) -> datetime:
    return datetime(2026, month, day, hour, tzinfo=UTC)


def touched_after(submitted: datetime, hours: float) -> dict:
    return {"first_touch_at": submitted + timedelta(hours=hours)}


@pytest.fixture
def weeks(app, desk):
    """Referrals of five partners over three months, with figures worked out by hand.

    Last week: alpha 5 referrals first touched after 1, 2, 3, 10 and 20 hours, 2 started
    care, 1 needed information; beta 3, touched after 4, 6 and 8 hours, 1 started care,
    2 needed information; delta (inactive) 1, touched after 5 hours, started care.
    The week of Oct 12 (the latest whose 30 days have passed on NOW): alpha 4 referrals,
    3 followed by another of alpha's within 30 days; beta 2, 1 followed; gamma 1, not.
    Epsilon last referred in August: more than 90 days ago.
    """
    with app.app_context():
        gamma = office("Gamma Pediatrics", "Gia Gamma", GAMMA)
        delta = office("Delta Clinic", "Dev Delta", "contact@delta.example", active=False)
        epsilon = office("Epsilon Health", "Eve Epsilon", "contact@epsilon.example")
        db.session.add_all([gamma, delta, epsilon])
        db.session.flush()
        alpha, beta = desk.partner_a_id, desk.partner_b_id
        # Last week: partner, day of November, hours to first touch, status, needed info.
        for partner_id, day, hours, status, needed_info in (
            (alpha, 16, 1, Status.COMPLETED, False),
            (alpha, 17, 2, Status.COMPLETED, False),
            (alpha, 18, 3, Status.IN_REVIEW, True),
            (alpha, 19, 10, Status.DECLINED, False),
            (alpha, 20, 20, Status.IN_REVIEW, False),
            (beta, 16, 4, Status.COMPLETED, True),
            (beta, 18, 6, Status.IN_REVIEW, True),
            (beta, 21, 8, Status.IN_REVIEW, False),
            (delta.id, 18, 5, Status.COMPLETED, False),
        ):
            submitted = at(11, day)
            referral(
                desk,
                submitted,
                partner_id=partner_id,
                status=status,
                needs_info_at=submitted if needed_info else None,
                **touched_after(submitted, hours),
            )
        # Sunday 10 PM in New York, Monday in UTC: the week before last, in the practice's
        # calendar. Not within 30 days of alpha's Oct 15 referral either.
        referral(desk, at(11, 16, hour=3), partner_id=alpha)
        for day in (12, 13, 14, 15):
            referral(desk, at(10, day), partner_id=alpha)
        for day in (14, 16):
            referral(desk, at(10, day), partner_id=beta)
        referral(desk, at(10, 13), partner_id=gamma.id)
        referral(desk, at(8, 10), partner_id=epsilon.id)
        db.session.commit()
        # A referral through the real pages this morning, with a patient's real-looking
        # details: no email may carry them.
        with frozen_at(NOW - timedelta(hours=2)):
            make_referral(desk)
        return {"gamma": gamma.id, "delta": delta.id, "epsilon": epsilon.id}


def weekly_messages() -> dict[str, OutboxMessage]:
    """The weekly emails in the outbox, by recipient (asserting one each)."""
    keys = [weekly_message_key(LAST_WEEK, "partner-success")] + [
        weekly_message_key(LAST_WEEK, f"partner/{partner_id}")
        for partner_id in db.session.scalars(select(Partner.id))
    ]
    messages = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.message_key.in_(keys))
    ).all()
    by_recipient = {message.recipient: message for message in messages}
    assert len(by_recipient) == len(messages), "a recipient got the week twice"
    return by_recipient


def lines_of(message: OutboxMessage) -> list[str]:
    return message.body.splitlines()


def test_each_partner_gets_its_own_figures(app, weeks):
    with app.app_context(), frozen_at(NOW):
        assert send_weekly_scorecards() == 4
        messages = weekly_messages()
        success = app.config["PARTNER_SUCCESS_EMAIL"]
        # Delta is inactive and epsilon quiet for over 90 days: nothing for them.
        assert set(messages) == {ALPHA, BETA, GAMMA, success}

        alpha = messages[ALPHA]
        assert alpha.subject == "Your referrals to Northwind Telehealth: Week of Nov 16, 2026"
        assert lines_of(alpha)[:10] == [
            "Hello Alice Alpha,",
            "",
            "These are the figures for the referrals Alpha Primary Care sent us in the week "
            "of Nov 16, 2026.",
            "",
            "Referrals submitted: 5",
            "Referral to first touch, median: 3.0 h",
            "Referral to first touch, 90th percentile: 20.0 h",
            "Referral to started care: 40.0%",
            "Incomplete referral rate: 20.0%",
            f"Re-referral within 30 days: 75.0% ({COHORT})",
        ]
        assert f"{app.config['PORTAL_BASE_URL']}{DASHBOARD}" in lines_of(alpha)
        assert "Beta" not in alpha.body and "Gamma" not in alpha.body

        beta = lines_of(messages[BETA])
        for line in (
            "Referrals submitted: 3",
            "Referral to first touch, median: 6.0 h",
            "Referral to first touch, 90th percentile: 8.0 h",
            "Referral to started care: 33.3%",
            "Incomplete referral rate: 66.7%",
            f"Re-referral within 30 days: 50.0% ({COHORT})",
        ):
            assert line in beta
        assert "Alpha" not in messages[BETA].body

        # Gamma sent nothing last week but referred in October: a short note, and its
        # re-referral figure.
        gamma = lines_of(messages[GAMMA])
        assert "We received no referrals from your office that week." in gamma
        assert f"Re-referral within 30 days: 0.0% ({COHORT})" in gamma
        assert not any(line.startswith("Referral to") for line in gamma)


def test_partner_success_gets_every_partners_figures(app, weeks):
    with app.app_context(), frozen_at(NOW):
        send_weekly_scorecards()
        message = weekly_messages()[app.config["PARTNER_SUCCESS_EMAIL"]]
    assert message.subject == "Referral scorecard: Week of Nov 16, 2026"
    lines = lines_of(message)
    # Nine referrals (alpha 5, beta 3, delta 1, inactive but counted); nine touches of
    # 1, 2, 3, 4, 5, 6, 8, 10, 20 hours; 4 started care; 3 needed information.
    for line in (
        "Referrals submitted: 9",
        "Referrals touched: 9",
        "Referral to first touch, median: 5.0 h",
        "Referral to first touch, 90th percentile: 20.0 h",
        "Referral to started care: 44.4%",
        "Incomplete referral rate: 33.3%",
        # 4 of the 7 referrals of Oct 12-18 were followed within 30 days.
        f"Re-referral within 30 days: 57.1% ({COHORT})",
        "3 partner offices that referred in the last 90 days get their own figures for the "
        "week too.",
    ):
        assert line in lines
    # Last week's own re-referral figure is always empty: it is not shown.
    assert "Partner re-referral" not in message.body
    assert f"{app.config['PORTAL_BASE_URL']}/scorecard?period=week&on=2026-11-16" in lines


def test_the_emails_say_what_the_dashboard_says(app, weeks, desk):
    """The per-partner figures come from grouped queries; each must be the figure the
    partner's dashboard shows for the week."""
    with app.app_context(), frozen_at(NOW):
        send_weekly_scorecards()
        messages = weekly_messages()
        for partner_id, recipient in ((desk.partner_a_id, ALPHA), (desk.partner_b_id, BETA)):
            lines = lines_of(messages[recipient])
            dashboard = [
                f"{column.label}: {display(value, column)}"
                for column, value in one_table(SUMMARY, LAST_WEEK, partner_id).figures()
                if column.name in EMAILED_FIGURES
            ]
            assert len(dashboard) == len(EMAILED_FIGURES)
            assert set(dashboard) <= set(lines)


def test_no_weekly_email_carries_patient_data(app, weeks):
    with app.app_context(), frozen_at(NOW):
        send_weekly_scorecards()
        assert find_patient_data_in_messages() == []
        references = db.session.scalars(select(Referral.reference)).all()
        for message in weekly_messages().values():
            assert not any(reference in message.body for reference in references)
            assert "Quillfeather" not in message.body and "1961" not in message.body


def test_a_second_run_or_a_restart_writes_nothing_twice(app, weeks):
    with app.app_context(), frozen_at(NOW):
        assert send_weekly_scorecards() == 4
        assert send_weekly_scorecards() == 0  # the week is marked done
        # A restart that lost the mark (or a second process that never saw it) finds
        # every key taken.
        db.session.execute(delete(JobState).where(JobState.name == STATE_NAME))
        db.session.commit()
        assert send_weekly_scorecards() == 0
        assert len(weekly_messages()) == 4
        assert db.session.get(JobState, STATE_NAME).value == {"week": "2026-11-16"}
    with app.app_context(), frozen_at(NOW + timedelta(days=7)):
        # The next week: alpha, beta and gamma still referred in the last 90 days.
        assert send_weekly_scorecards() == 4
        total = db.session.scalar(
            select(func.count()).where(OutboxMessage.subject.like("%Week of Nov 23, 2026"))
        )
        assert total == 4


def test_a_run_that_crashes_midway_is_finished_by_the_next(app, weeks, monkeypatch):
    real_queue_email = tasks.queue_email
    written = []

    def crash_after_the_first(**kwargs):
        if written:
            raise RuntimeError("the jobs process died")
        written.append(kwargs["recipient"])
        return real_queue_email(**kwargs)

    monkeypatch.setattr(tasks, "queue_email", crash_after_the_first)
    with app.app_context(), frozen_at(NOW):
        with pytest.raises(RuntimeError):
            send_weekly_scorecards()
        db.session.rollback()
        assert set(weekly_messages()) == {ALPHA}  # the first one is kept
        assert db.session.get(JobState, STATE_NAME) is None

    monkeypatch.setattr(tasks, "queue_email", real_queue_email)
    with app.app_context(), frozen_at(NOW):
        assert send_weekly_scorecards() == 3  # the rest, once
        assert set(weekly_messages()) == {ALPHA, BETA, GAMMA, app.config["PARTNER_SUCCESS_EMAIL"]}


def test_the_figures_take_the_same_queries_for_any_number_of_partners(
    app, weeks, desk, count_queries
):
    with app.app_context(), frozen_at(NOW):
        weekly_emails(LAST_WEEK, NOW)  # the first run also stores the closed week's summary
        with count_queries() as few:
            assert len(weekly_emails(LAST_WEEK, NOW)) == 4
        for n in range(5):
            more = office(f"Office {n}", f"Contact {n}", f"contact{n}@office.example")
            db.session.add(more)
            db.session.flush()
            submitted = at(11, 17)
            referral(desk, submitted, partner_id=more.id, **touched_after(submitted, n + 1))
        db.session.commit()
        weekly_emails(LAST_WEEK, NOW)
        with count_queries() as many:
            assert len(weekly_emails(LAST_WEEK, NOW)) == 9
    assert many.count == few.count


def test_a_partners_email_arrives_over_smtp(app, weeks, smtp_sink):
    with app.app_context(), frozen_at(NOW):
        send_weekly_scorecards()
        key = weekly_message_key(LAST_WEEK, f"partner/{weeks['gamma']}")
    with app.app_context():
        assert deliver_due_messages().sent >= 4
    (email,) = [message for recipients, message in smtp_sink.messages if recipients == [GAMMA]]
    assert email["Subject"] == "Your referrals to Northwind Telehealth: Week of Nov 16, 2026"
    assert email["Message-ID"].startswith(f"<{key}@")
    assert f"Re-referral within 30 days: 0.0% ({COHORT})" in email.get_content()


def test_the_re_referral_week_is_the_latest_whose_30_days_have_passed(app):
    with app.app_context():
        assert latest_re_referral_week(NOW).first_day == date(2026, 10, 12)
        # The week of Oct 12 ends at midnight Oct 19 in New York (04:00 UTC, daylight
        # time): its 30 days have passed at midnight Nov 18 in New York, 05:00 UTC since
        # the clocks went back on Nov 1, not a second sooner (720 hours would be 04:00).
        passed = datetime(2026, 11, 18, 5, tzinfo=UTC)
        assert latest_re_referral_week(passed).first_day == date(2026, 10, 12)
        earlier = passed - timedelta(seconds=1)
        assert latest_re_referral_week(earlier).first_day == date(2026, 10, 5)

        # Across a year, every hour: the week's 30 days have passed; the next week's have
        # not. A week's 30 days end at local midnight 30 days after its Sunday.
        def thirty_days_over(week):
            eastern = ZoneInfo("America/New_York")
            midnight = datetime.combine(week.last_day + timedelta(days=31), time(0), eastern)
            return midnight.astimezone(UTC)

        moment = datetime(2026, 1, 1, tzinfo=UTC)
        while moment < datetime(2027, 1, 1, tzinfo=UTC):
            week = latest_re_referral_week(moment)
            following = week_of(week.first_day + timedelta(days=7))
            assert thirty_days_over(week) <= moment < thirty_days_over(following)
            moment += timedelta(hours=1)


def test_the_demo_desk_has_partner_emails_with_a_re_referral_figure(app, client_for):
    from portal.demo import DEMO_USERS, load_demo_data

    with app.app_context(), frozen_at(NOW):
        load_demo_data()  # what `flask demo load` does
        partners = db.session.scalars(select(Partner)).all()
        emails = {
            partner.name: db.session.scalar(
                select(OutboxMessage).where(
                    OutboxMessage.message_key
                    == weekly_message_key(LAST_WEEK, f"partner/{partner.id}")
                )
            )
            for partner in partners
        }
    assert all(emails.values()), emails
    for message in emails.values():
        assert "% (referrals of the week of Oct 12, 2026" in message.body
    success = next(email for email, _n, role, _p in DEMO_USERS if role is Role.PARTNER_SUCCESS)
    page = client_for(success).get("/dev/outbox").get_data(as_text=True)
    assert "Your referrals to Northwind Telehealth: Week of Nov 16, 2026" in page
