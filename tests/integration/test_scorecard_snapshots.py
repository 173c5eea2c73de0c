"""A closed period's figures are stored, read back, and computed again the moment a
change could alter them; nothing stale is ever shown."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

from sqlalchemy import func, select

from portal.clock import frozen_at
from portal.extensions import db
from portal.models import Partner, Referral, ScorecardSnapshot
from portal.referrals import services
from portal.scorecard import snapshots
from portal.scorecard.periods import Period
from portal.scorecard.report import one_table, scorecard_report
from portal.scorecard.tables import SUMMARY
from tests.fixtures.desk import submission, user

WEEK = Period("week", date(2026, 11, 2), date(2026, 11, 8))
MONDAY = datetime(2026, 11, 2, 15, tzinfo=UTC)  # 10 am Eastern
LATER = datetime(2026, 11, 20, 12, tzinfo=UTC)  # the week is closed, not yet settled


def send(desk, at, email=None):
    with frozen_at(at):
        email = email or desk.partner_a
        made = services.submit_referral(submission(desk, partner_email=email), user(email))
        db.session.commit()
        return made.referral.id


def touch(desk, referral_id, at):
    with frozen_at(at):
        referral = db.session.get(Referral, referral_id)
        services.record_first_touch(referral, user(desk.intake), expected_version=None)
        db.session.commit()


def summary(now=LATER, partner_id=None):
    with frozen_at(now):
        return dict(
            (column.name, value) for column, value in one_table(SUMMARY, WEEK, partner_id).figures()
        )


def stored_count():
    return db.session.scalar(select(func.count()).select_from(ScorecardSnapshot))


def test_a_closed_week_is_stored_then_read_back_with_fewer_statements(app, desk, count_queries):
    with app.app_context():
        first = send(desk, MONDAY)
        touch(desk, first, MONDAY + timedelta(hours=2))
        send(desk, MONDAY + timedelta(days=1))
        with count_queries() as computing:
            figures = summary()
        assert figures["submitted_referrals"] == 2 and figures["first_touch_median_hours"] == 2.0
        assert stored_count() == 1
        with count_queries() as reading:
            assert summary() == figures
        # Read back: the counters, the snapshot, and (the week has not settled) the
        # re-referral values afresh; computing runs every figure's query and stores.
        assert reading.count == 3, reading
        assert reading.count < computing.count


def test_a_change_to_a_referral_of_the_week_is_seen_at_once(app, desk):
    with app.app_context():
        first = send(desk, MONDAY)
        assert summary()["touched_referrals"] == 0
        touch(desk, first, MONDAY + timedelta(hours=5))  # a late first touch
        assert summary()["touched_referrals"] == 1
        assert summary()["first_touch_median_hours"] == 5.0
        send(desk, MONDAY + timedelta(days=2))  # a referral of the week, added later
        assert summary()["submitted_referrals"] == 2


def test_a_change_elsewhere_leaves_the_snapshot_in_use(app, desk, count_queries):
    with app.app_context():
        send(desk, MONDAY)
        summary()
        other = send(desk, MONDAY + timedelta(days=9))  # the week after
        touch(desk, other, MONDAY + timedelta(days=9, hours=1))
        with count_queries() as reading:
            summary()
        assert reading.count == 3


def test_a_change_committed_while_computing_makes_the_result_stale_not_wrong(app, desk):
    with app.app_context():
        first = send(desk, MONDAY)
        scope = WEEK.scope()
        memory = snapshots.Memory(None, LATER)
        assert memory.recall([(scope, SUMMARY.name)]) == {}  # counters read first
        touch(desk, first, MONDAY + timedelta(hours=1))  # lands before the rows are stored
        memory.remember(scope, SUMMARY.name, [("figures from before the change",)])
        db.session.commit()
        assert snapshots.Memory(None, LATER).recall([(scope, SUMMARY.name)]) == {}
        assert summary()["touched_referrals"] == 1


def test_time_alone_moves_the_re_referral_figure_of_a_stored_week(app, desk):
    with app.app_context():
        send(desk, MONDAY)
        send(desk, MONDAY + timedelta(days=10))  # follows it within 30 days
        early = summary(now=LATER)  # the week's 30 days have not passed
        assert early["re_referral_percent"] is None
        late = summary(now=MONDAY + timedelta(days=31))
        assert (late["re_referral_percent"], late["followed_within_30_days_referrals"]) == (
            100.0,
            1,
        )
        # The league table too: its stored copy keeps each partner's counts, and the
        # referrals whose 30 days ended since are added to them.
        from portal.scorecard.tables import LEAGUE

        def alpha_re_referral(now):
            with frozen_at(now):
                rows = one_table(LEAGUE, WEEK, None).rows
            assert all(len(row) == len(LEAGUE.columns) for row in rows)
            return next(row[-1] for row in rows if row[0] == "Alpha Primary Care")

        assert alpha_re_referral(LATER) is None
        assert alpha_re_referral(MONDAY + timedelta(days=31)) == 100.0
        assert stored_count() >= 2  # the league was stored at LATER, then refreshed
        # And the week's point on the re-referral trend, read from its stored summary.
        from portal.scorecard.report import trends

        def trend_point(now):
            with frozen_at(now):
                re_referral = trends(WEEK, None)[-1]
            return re_referral.values[re_referral.weeks.index(WEEK.first_day)]

        assert trend_point(LATER) is None
        assert trend_point(MONDAY + timedelta(days=31)) == 100.0


def test_open_periods_and_custom_ranges_are_not_stored(app, desk):
    with app.app_context():
        send(desk, MONDAY)
        with frozen_at(MONDAY + timedelta(days=1)):  # the week is still open
            one_table(SUMMARY, WEEK, None)
        custom = Period("custom", date(2026, 11, 2), date(2026, 11, 8))
        with frozen_at(LATER):
            scorecard_report(custom, None, staff=True)
        # Only the trend weeks that have closed (and the custom range's own tables not).
        names = set(db.session.scalars(select(ScorecardSnapshot.table_name)))
        assert names == {"summary"}
        assert all(
            end + snapshots.GRACE <= LATER
            for end in db.session.scalars(select(ScorecardSnapshot.end_at))
        )


def test_renaming_a_partner_makes_every_snapshot_stale(app, desk):
    with app.app_context():
        send(desk, MONDAY)
        with frozen_at(LATER):
            tables, _trends = scorecard_report(WEEK, None, staff=True)
        league = next(t for t in tables if t.name == "league")
        assert "Alpha Primary Care" in {row[0] for row in league.rows}
        db.session.get(Partner, desk.partner_a_id).name = "Alpha Family Medicine"
        db.session.commit()
        with frozen_at(LATER):
            tables, _trends = scorecard_report(WEEK, None, staff=True)
        league = next(t for t in tables if t.name == "league")
        assert "Alpha Family Medicine" in {row[0] for row in league.rows}


def test_the_page_is_the_same_computed_or_read_back(app, desk, client_for):
    with app.app_context():
        for day in range(5):
            rid = send(desk, MONDAY + timedelta(days=day))
            touch(desk, rid, MONDAY + timedelta(days=day, hours=day + 1))
        send(desk, MONDAY, email=desk.partner_b)
    with frozen_at(LATER):
        staff = client_for(desk.success)
        first = staff.get("/scorecard", query_string=WEEK.arguments).get_data(as_text=True)
        again = staff.get("/scorecard", query_string=WEEK.arguments).get_data(as_text=True)
    content = lambda page: page[page.index("<h1") : page.index("</main>")]  # noqa: E731
    assert content(first) == content(again)
    assert "Alpha Primary Care" in content(first)
    with app.app_context():
        assert stored_count() > 1


def test_a_contact_attempt_alone_is_a_change_too(app, desk):
    """Logging a failed call touches no referral column a figure reads, only the
    attempts the funnel counts: the week's stored funnel must still go stale."""
    from portal.models import ContactMethod, OutreachResult
    from portal.scorecard.tables import FUNNEL

    def attempted():
        with frozen_at(LATER):
            return dict(one_table(FUNNEL, WEEK, None).rows)["Contact attempted"]

    with app.app_context():
        first = send(desk, MONDAY)
        touch(desk, first, MONDAY + timedelta(hours=1))
        with frozen_at(MONDAY + timedelta(hours=2)):
            referral = db.session.get(Referral, first)
            services.accept(referral, user(desk.clinical), expected_version=None, provider="Dr")
            db.session.commit()
        assert attempted() == 0
        with frozen_at(LATER - timedelta(days=1)):
            db.session.expire_all()
            services.log_outreach(
                db.session.get(Referral, first),
                user(desk.intake),
                expected_version=None,
                channel=ContactMethod.PHONE,
                result=OutreachResult.NO_ANSWER,
            )
            db.session.commit()
        assert attempted() == 1


def test_the_hourly_job_stores_last_week_and_last_month(app, desk):
    from portal.scorecard.report import store_closed_periods

    with app.app_context():
        send(desk, MONDAY)
        with frozen_at(LATER):  # Friday 20 November: last week is 9-15 Nov, last month October
            store_closed_periods()
            stored = {
                (start.date(), name)
                for start, name in db.session.execute(
                    select(ScorecardSnapshot.start_at, ScorecardSnapshot.table_name)
                )
            }
        assert (date(2026, 11, 9), "league") in stored  # last week, 00:00 Eastern is 05:00 UTC
        assert (date(2026, 10, 1), "league") in stored  # last month


def test_a_stored_week_keeps_its_re_referral_once_its_30_days_are_over(app, desk):
    """Stored before its 30 days were over, topped up on each read while they run, and
    stored again once they are over: from then on it reads as it is."""
    with app.app_context():
        send(desk, MONDAY)
        send(desk, MONDAY + timedelta(days=10))
        assert summary(now=LATER)["re_referral_percent"] is None  # stored on day 18
        assert summary(now=MONDAY + timedelta(days=31))["re_referral_percent"] == 100.0
        settled = MONDAY + timedelta(days=60)
        assert summary(now=settled)["re_referral_percent"] == 100.0
        computed = db.session.scalar(
            select(ScorecardSnapshot.computed_at).where(ScorecardSnapshot.table_name == "summary")
        )
        assert computed == settled  # stored again, dated after the period settled
        assert summary(now=settled + timedelta(days=30))["re_referral_percent"] == 100.0


def test_a_new_partner_appears_in_a_stored_league_table(app, desk):
    from portal.scorecard.tables import LEAGUE

    with app.app_context():
        send(desk, MONDAY)
        with frozen_at(LATER):
            one_table(LEAGUE, WEEK, None)
        db.session.add(
            Partner(
                name="Gamma Pediatrics",
                specialty="Pediatrics",
                referral_contact_name="Gail",
                referral_contact_email="gail@gamma.example",
            )
        )
        db.session.commit()
        with frozen_at(LATER):
            names = {row[0] for row in one_table(LEAGUE, WEEK, None).rows}
        assert "Gamma Pediatrics" in names
