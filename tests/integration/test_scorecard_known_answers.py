"""The scorecard against answers worked out by hand.

Thirty referrals from two partners are built through the same services staff and
partners use, each step at a known moment in the practice's zone (America/New_York).
Every expected figure below is computed by hand in the comments next to it, from the
table of stories, not by calling the code under test. The stories cover the edges a
partner checking by hand would trip on: even counts (the median is the mean of the two
middle values), a referral sent at 9 pm on 31 October (October's, though it is already
November in UTC) and one at 00:30 on 1 November (the night the clocks go back), contact
attempts logged while a referral sits in no-show, a visit booked again after a no-show,
a moved visit and a cancelled one.
"""

from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from portal.clock import frozen_at
from portal.extensions import db
from portal.localtime import practice_zone
from portal.models import AppointmentMode, ContactMethod, OutreachResult, Referral
from portal.patients.services import Slot, send_next_step_link
from portal.referrals import services
from portal.referrals.actions import cancel_appointment
from portal.scorecard import metrics
from portal.scorecard.periods import Period
from portal.scorecard.report import display
from portal.scorecard.snapshots import is_settled
from portal.scorecard.tables import STARTED_CARE, percent, rounded_percent
from tests.fixtures.desk import submission, user

ET = ZoneInfo("America/New_York")
H = timedelta(hours=1)


def local(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=ET)


# --- The steps of a story, each done at its own moment ------------------------------


def accept(r, desk, at):
    services.accept(r, user(desk.clinical), expected_version=None, provider="Dr. Park")


def decline(r, desk, at):
    services.decline(r, user(desk.clinical), expected_version=None, reason="Not eligible")


def redirect(r, desk, at):
    services.redirect_referral(r, user(desk.clinical), expected_version=None, destination="ENT")


def reached(r, desk, at):
    services.log_outreach(
        r,
        user(desk.intake),
        expected_version=None,
        channel=ContactMethod.PHONE,
        result=OutreachResult.REACHED,
    )


def no_answer(r, desk, at):
    services.log_outreach(
        r,
        user(desk.intake),
        expected_version=None,
        channel=ContactMethod.PHONE,
        result=OutreachResult.NO_ANSWER,
    )


def book(visit: datetime):
    def step(r, desk, at):
        services.schedule(
            r,
            user(desk.intake),
            expected_version=None,
            appointment_at=visit,
            mode=AppointmentMode.VIDEO,
        )

    return step


def completed(r, desk, at):
    services.record_completed(r, user(desk.intake), expected_version=None)


def no_show(r, desk, at):
    services.record_no_show(r, user(desk.intake), expected_version=None)


def cancel(r, desk, at):
    cancel_appointment(r, user(desk.intake), expected_version=None)


def unreachable(r, desk, at):
    services.mark_unreachable(r, user(desk.intake), expected_version=None)


def withdraw(r, desk, at):
    services.withdraw(
        r,
        user(desk.partner_a if r.partner_id == desk.partner_a_id else desk.partner_b),
        expected_version=None,
    )


@dataclass
class Story:
    name: str
    partner: str  # "A" or "B"
    sent: datetime
    touch: float | None = None  # hours after sending
    steps: list[tuple[datetime, object]] = field(default_factory=list)
    incomplete: bool = False


def sent_plus(story_sent: datetime, hours: float) -> datetime:
    return story_sent + hours * H


def stories() -> list[Story]:
    s = []

    def add(name, partner, sent, touch=None, steps=(), incomplete=False):
        s.append(
            Story(
                name,
                partner,
                sent,
                touch,
                [(sent_plus(sent, h) if isinstance(h, (int, float)) else h, f) for h, f in steps],
                incomplete,
            )
        )

    # Partner A, October. First touch after 0.5, 1, 1.5, 2, 3, 4, 6, 8, 12, 20 hours.
    add(
        "A1",
        "A",
        local(10, 1, 9),
        0.5,
        [
            (1, accept),
            (2, reached),
            (3, book(local(10, 8, 10))),
            (local(10, 8, 11), completed),
        ],
    )
    add(
        "A2",
        "A",
        local(10, 3, 9),
        1,
        [
            (2, accept),
            (3, book(local(10, 10, 10))),
            (local(10, 10, 11), no_show),
            # Two contact attempts while it sits in no-show: still one missed visit.
            (local(10, 10, 12), no_answer),
            (local(10, 11, 12), no_answer),
        ],
    )
    add(
        "A3",
        "A",
        local(10, 5, 9),
        1.5,
        [
            (2, accept),
            (4, reached),
            (5, book(local(10, 12, 10))),
            (local(10, 9, 9), book(local(10, 14, 10))),  # moved: one reschedule
            (local(10, 14, 11), completed),
        ],
    )
    add(
        "A4",
        "A",
        local(10, 7, 9),
        2,
        [
            (3, accept),
            (6, reached),
            (7, book(local(10, 9, 10))),
            (local(10, 9, 11), no_show),
            (local(10, 9, 15), book(local(10, 12, 10))),  # booked again after a no-show
            (local(10, 12, 11), no_show),  # and missed again: two no-shows
        ],
    )
    add(
        "A5",
        "A",
        local(10, 9, 9),
        3,
        [
            (4, accept),
            (8, reached),
            (9, book(local(10, 16, 10))),
            (local(10, 13, 9), cancel),  # cancelled to book again: one reschedule
            (local(10, 13, 10), book(local(10, 20, 10))),
        ],
    )
    add("A6", "A", local(10, 11, 9), 4, [(5, decline)])
    add("A7", "A", local(10, 13, 9), 6, [(7, accept), (10, no_answer)])
    add("A8", "A", local(10, 15, 9), 8, [(30, withdraw)])
    add("A9", "A", local(10, 17, 9), 12)
    add("A10", "A", local(10, 19, 9), 20)
    add("A11", "A", local(10, 21, 9), incomplete=True)  # waits in needs information
    add("A12", "A", local(10, 31, 21))  # 01:00 UTC on 1 November: still October here
    # Partner A, November (from 00:30 on 1 November, before the clocks go back).
    add("A13", "A", local(11, 1, 0, 30), 2)
    add("A14", "A", local(11, 2, 9), 1)
    add("A15", "A", local(11, 4, 9), 3)
    add("A16", "A", local(11, 6, 9), 5)
    add("A17", "A", local(11, 9, 9), 7)
    # Partner B, October. First touch after 2.5, 4.5, 5, 7, 9, 30 hours.
    add(
        "B1",
        "B",
        local(10, 2, 10),
        2.5,
        [
            (3, accept),
            (4, reached),
            (5, book(local(10, 9, 10))),
            (local(10, 9, 11), completed),
        ],
    )
    add(
        "B2",
        "B",
        local(10, 4, 10),
        4.5,
        [
            (5, accept),
            (12, no_answer),
            (30, no_answer),
            (50, no_answer),
            (51, unreachable),
        ],
    )
    add("B3", "B", local(10, 6, 10), 5)
    add("B4", "B", local(10, 8, 10), 7)
    add("B5", "B", local(10, 10, 10), 9, [(10, redirect)])
    add("B6", "B", local(10, 12, 10), 30)
    add("B7", "B", local(10, 14, 10), None, [(1, withdraw)])
    # Partner B, the week of 16 November: first touch after 1 to 6 hours.
    for i, day in enumerate((16, 17, 18, 19, 20, 21)):
        add(f"B{8 + i}", "B", local(11, day, 10), i + 1)
    return s


def build(desk) -> dict[str, int]:
    """Every story's events in time order, each at its moment; returns name -> id."""
    ids: dict[str, int] = {}
    timeline: list[tuple[datetime, int, str, object]] = []
    for order, story in enumerate(stories()):
        timeline.append((story.sent, order, story.name, ("send", story)))
        if story.touch is not None:
            timeline.append((sent_plus(story.sent, story.touch), order, story.name, "touch"))
        for at, step in story.steps:
            timeline.append((at, order, story.name, step))
    for at, _order, name, step in sorted(timeline, key=lambda t: (t[0], t[1])):
        with frozen_at(at):
            if isinstance(step, tuple):
                story = step[1]
                email = desk.partner_a if story.partner == "A" else desk.partner_b
                extra = {"service_line_id": desk.cardio_id, "complete": False}
                made = services.submit_referral(
                    submission(desk, partner_email=email, **(extra if story.incomplete else {})),
                    user(email),
                ).referral
                ids[name] = made.id
            else:
                referral = db.session.get(Referral, ids[name])
                if step == "touch":
                    services.record_first_touch(referral, user(desk.intake), expected_version=None)
                else:
                    step(referral, desk, at)
            db.session.commit()
    return ids


OCTOBER = Period("month", date(2026, 10, 1), date(2026, 10, 31))
NOVEMBER = Period("month", date(2026, 11, 1), date(2026, 11, 30))
HALLOWEEN_WEEK = Period("week", date(2026, 10, 26), date(2026, 11, 1))
B_WEEK = Period("week", date(2026, 11, 16), date(2026, 11, 22))
NOW = datetime(2026, 12, 28, 12, tzinfo=UTC)  # every October 30-day window has passed


@pytest.fixture
def built(app, desk):
    with app.app_context():
        ids = build(desk)
        assert len(ids) == 30
        assert practice_zone() == ET
    return ids


def test_the_stories_reach_the_statuses_they_tell(app, desk, built):
    with app.app_context():
        status = {name: db.session.get(Referral, i).status.value for name, i in built.items()}
    assert [status[n] for n in ("A1", "A2", "A3", "A4", "A5", "A6", "A7", "A8")] == [
        "completed",
        "no_show",
        "completed",
        "no_show",
        "scheduled",
        "declined",
        "accepted",
        "withdrawn",
    ]
    assert [status[n] for n in ("A11", "A12", "B1", "B2", "B5", "B7")] == [
        "needs_info",
        "submitted",
        "completed",
        "unreachable",
        "redirected",
        "withdrawn",
    ]


def test_october_headline_figures(app, desk, built):
    with app.app_context():
        october = OCTOBER.scope()
        # October's local bounds: 1 Oct 00:00 EDT to 1 Nov 00:00 EDT.
        assert (october.start, october.end) == (
            datetime(2026, 10, 1, 4, tzinfo=UTC),
            datetime(2026, 11, 1, 4, tzinfo=UTC),
        )
        # Submitted in October: A1-A12 (A12 at 9 pm on the 31st) and B1-B7: 19.
        touch = metrics.first_touch_time(october)
        # Touched: A's 10 and B's 6. Sorted hours: 0.5 1 1.5 2 2.5 3 4 4.5 | 5 6 7 8 9 12
        # 20 30. Sixteen values: median = (8th + 9th) / 2 = (4.5 + 5) / 2 = 4.75.
        # 90th percentile, nearest rank: ceil(0.9 * 16) = 15th = 20.
        assert (touch.touched, touch.median_hours, touch.p90_hours) == (16, 4.75, 20.0)
        conversion = metrics.started_care_conversion(october)
        assert (conversion.completed, conversion.submitted) == (3, 19)  # A1, A3, B1
        incomplete = metrics.incomplete_rate(october)
        assert (incomplete.part, incomplete.whole) == (1, 19)  # A11
        # Outcomes reached in October, hours from sending: B7 withdrawn 1, A6 declined 5,
        # B5 redirected 10, A8 withdrawn 30, B2 unreachable 51, B1 completed 169 (7 d 1 h),
        # A1 170 (7 d 2 h), A3 218 (9 d 2 h). Eight: median = (30 + 51) / 2 = 40.5.
        assert metrics.median_cycle_time_hours(october) == 40.5
        assert dict(metrics.not_converted_reasons(october)) == {
            "Eligibility mismatch": 1,  # A6
            "Missing records": 0,
            "Patient choice": 2,  # A8, B7: withdrawn, not while information was asked for
            "Unreachable": 1,  # B2
            "Redirected": 1,  # B5
        }
        # Re-referral: every October referral is followed by its partner's next one within
        # 30 days, except B7 (14 Oct; B's next is 16 Nov, 33 days on): 18 of 19.
        re_referral = metrics.re_referral_rate(october, NOW)
        assert (re_referral.part, re_referral.whole) == (18, 19)
        # 15 Nov 00:00 UTC is 14 Nov 19:00 EST: only referrals sent by 15 Oct 19:00 (30 of
        # the practice's days before) have had 30 days: A1-A8 (A8: 15 Oct 09:00) and
        # B1-B7; all but B7 followed: 14 of 15.
        early = metrics.re_referral_rate(october, datetime(2026, 11, 15, tzinfo=UTC))
        assert (early.part, early.whole) == (14, 15)


def test_october_per_partner(app, desk, built):
    with app.app_context():
        league = {row.partner: row for row in metrics.league_table(OCTOBER.scope(), NOW)}
        alpha, beta = league["Alpha Primary Care"], league["Beta Cardiology"]
        # A: 12 sent; touch hours 0.5 1 1.5 2 3 | 4 6 8 12 20: median (3 + 4) / 2 = 3.5.
        assert (alpha.referrals, alpha.first_touch_median_hours) == (12, 3.5)
        assert (alpha.conversion, alpha.incomplete, alpha.re_referral) == (2 / 12, 1 / 12, 1.0)
        # B: 7 sent; touch hours 2.5 4.5 5 | 7 9 30: median (5 + 7) / 2 = 6.
        assert (beta.referrals, beta.first_touch_median_hours) == (7, 6.0)
        assert (beta.conversion, beta.incomplete, beta.re_referral) == (1 / 7, 0.0, 6 / 7)

        rows = {(r.partner[0], r.month): r for r in metrics.partner_months(OCTOBER.scope())}
        assert set(rows) == {("A", date(2026, 10, 1)), ("B", date(2026, 10, 1))}
        a, b = rows["A", date(2026, 10, 1)], rows["B", date(2026, 10, 1)]
        # A's first contacts (first contact attempt), hours after sending: A1 2, A3 4,
        # A4 6, A5 8, A7 10, A2 171 (its first attempt came after the no-show, 10 Oct
        # 12:00). Six: median (6 + 8) / 2 = 7.
        assert (a.referrals, a.median_hours_to_first_contact) == (12, 7.0)
        # Accepted: A1 A2 A3 A4 A5 A7 (A6 declined, A8-A12 never triaged); scheduled: A1-A5.
        assert a.scheduling_completion == 5 / 6
        # No-shows: A2 once (its two contact attempts in no-show are not more), A4 twice.
        # Reschedules: A3 moved once, A5 cancelled once (A4's booking after its no-show
        # and A5's new booking are not reschedules).
        assert (a.no_shows, a.reschedules) == (3, 2)
        # B: first contacts B1 4, B2 12 hours: median 8. Accepted B1, B2; scheduled B1.
        assert (b.referrals, b.median_hours_to_first_contact) == (7, 8.0)
        assert (b.scheduling_completion, b.no_shows, b.reschedules) == (0.5, 0, 0)


def test_months_and_weeks_cut_at_local_midnight(app, desk, built):
    with app.app_context():
        both = metrics.Scope(OCTOBER.scope().start, NOVEMBER.scope().end)
        counts = {(r.partner[0], r.month): r.referrals for r in metrics.partner_months(both)}
        # A12 (9 pm on 31 Oct, November in UTC) is October's; A13 (00:30 on 1 Nov) and
        # A14-A17 are November's.
        assert counts == {
            ("A", date(2026, 10, 1)): 12,
            ("B", date(2026, 10, 1)): 7,
            ("A", date(2026, 11, 1)): 5,
            ("B", date(2026, 11, 1)): 6,
        }
        assert metrics.started_care_conversion(NOVEMBER.scope()).submitted == 11
        # The week of 26 Oct runs to the end of Sunday 1 Nov, an hour longer than most
        # (the clocks went back): it holds A12 and A13.
        week = HALLOWEEN_WEEK.scope()
        assert week.end - week.start == timedelta(days=7, hours=1)
        assert metrics.started_care_conversion(week).submitted == 2
        # B's week of 16 Nov: touched after 1..6 hours; median (3 + 4) / 2 = 3.5, 90th
        # percentile ceil(5.4) = 6th = 6.
        touch = metrics.first_touch_time(B_WEEK.scope(desk.partner_b_id))
        assert (touch.touched, touch.median_hours, touch.p90_hours) == (6, 3.5, 6.0)
        # The same week in a two-week trend (the week before it has nothing touched):
        # A15-A17's touches (3, 5, 7 h) are the week of 2 Nov; the week of 9 Nov has A17.
        weeks = [Period("week", date(2026, 11, d), date(2026, 11, d + 6)) for d in (9, 16)]
        trend = metrics.first_touch_by_cohort(metrics.Cohorts.of([w.scope() for w in weeks]))
        assert [t.median_hours for t in trend] == [7.0, 3.5]


def csv_rows(response) -> list[dict[str, str]]:
    assert response.status_code == 200
    return list(csv.DictReader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff"))))


def test_the_pages_and_files_show_the_hand_computed_figures(app, desk, built, client_for):
    october = {"period": "month", "on": "2026-10-01"}
    with frozen_at(NOW):
        staff = client_for(desk.success)
        summary = csv_rows(staff.get("/scorecard/summary.csv", query_string=october))[0]
        assert summary["first_touch_median_hours"] == "4.75"
        assert summary["first_touch_p90_hours"] == "20.0"
        assert summary["cycle_time_median_hours"] == "40.5"
        assert summary["started_care_percent"] == "15.8"  # 3 / 19
        assert summary["re_referral_percent"] == "94.7"  # 18 / 19
        months = csv_rows(staff.get("/scorecard/months.csv", query_string=october))
        assert [
            (m["partner"], m["month_starting"], m["no_shows"], m["reschedules"]) for m in months
        ] == [
            ("Alpha Primary Care", "2026-10-01", "3", "2"),
            ("Beta Cardiology", "2026-10-01", "0", "0"),
        ]
        page = staff.get("/scorecard", query_string=october).get_data(as_text=True)
        assert "4.8 h" in page  # 4.75 h to one decimal
        partner = client_for(desk.partner_a)
        own = csv_rows(
            partner.get(
                "/dashboard/summary.csv",
                query_string={"period": "custom", "start": "2026-10-01", "end": "2026-10-31"},
            )
        )[0]
        # A alone: median 3.5 h; 90th percentile ceil(0.9 * 10) = 9th = 12 h; 2 of 12
        # started care (16.7 %); 1 of 12 needed information (8.3 %).
        assert (own["first_touch_median_hours"], own["first_touch_p90_hours"]) == ("3.5", "12.0")
        assert (own["started_care_percent"], own["incomplete_percent"]) == ("16.7", "8.3")


# --- Rounding: once, from the unrounded figure, the same on the page and in the CSV -----

FIRST_WEEK_OF_NOVEMBER = {"period": "week", "on": "2026-11-02"}
MONDAY_2_NOV = local(11, 2, 10)


def send(desk, at: datetime, **kw) -> int:
    with frozen_at(at):
        sender = user(kw.get("partner_email", desk.partner_a))
        made = services.submit_referral(submission(desk, **kw), sender)
        db.session.commit()
        return made.referral.id


def figures_on_page(html: str) -> dict[str, str]:
    return dict(re.findall(r'<tr><th scope="row">([^<]*)</th><td>([^<]*)</td></tr>', html))


def test_a_share_short_of_all_is_not_shown_as_100_percent(app, desk, client_for):
    with app.app_context():
        # 200 referrals a minute apart; all but the first sent to cardiology without its
        # required items, so they enter needs information at submission: 199 of 200.
        for i in range(200):
            send(
                desk,
                MONDAY_2_NOV + i * timedelta(minutes=1),
                service_line_id=desk.cardio_id,
                complete=(i == 0),
            )
    with frozen_at(NOW):
        staff = client_for(desk.success)
        page = staff.get("/scorecard", query_string=FIRST_WEEK_OF_NOVEMBER).get_data(as_text=True)
        summary = csv_rows(staff.get("/scorecard/summary.csv", query_string=FIRST_WEEK_OF_NOVEMBER))
    figures = figures_on_page(page)
    # 199 / 200 = 99.5 %: to one decimal, on the page as in the file.
    assert figures["Referrals that needed information"] == "199"
    assert figures["Incomplete referral rate"] == "99.5%"
    assert summary[0]["incomplete_percent"] == "99.5"
    # Re-referral: each is followed by the next a minute later, the last by none: 199 / 200.
    assert figures["Partner re-referral within 30 days"] == "99.5%"
    assert summary[0]["re_referral_percent"] == "99.5"
    # The 12-week trend shows the same figure as the week's own.
    assert '<th scope="row">Nov 2, 2026</th><td>99.5%</td>' in page


@pytest.mark.parametrize(
    ("part", "whole", "shown"),
    [
        (199, 200, 99.5),
        (1, 201, 0.5),  # 0.4975 %
        (1999, 2000, 99.9),  # 99.95 %: not all, so not 100
        (1, 2001, 0.1),  # 0.04998 %: not none, so not 0
        (1, 3, 33.3),
        (2, 3, 66.7),
        (0, 7, 0.0),
        (7, 7, 100.0),
    ],
)
def test_a_percentage_is_rounded_once_to_one_decimal_and_never_to_all_or_none(
    app, part, whole, shown
):
    assert rounded_percent(percent(part / whole)) == shown
    with app.test_request_context():
        assert display(percent(part / whole), STARTED_CARE) == f"{shown:.1f}%"


def test_hours_are_rounded_once_from_the_unrounded_figure(app, desk, client_for):
    with app.app_context():
        rid = send(desk, MONDAY_2_NOV)
        # First touch 4 h 44 min 56 s after sending: 17,096 s = 4.74889 h.
        with frozen_at(MONDAY_2_NOV + timedelta(hours=4, minutes=44, seconds=56)):
            referral = db.session.get(Referral, rid)
            services.record_first_touch(referral, user(desk.intake), expected_version=None)
            db.session.commit()
    with frozen_at(NOW):
        staff = client_for(desk.success)
        page = staff.get("/scorecard", query_string=FIRST_WEEK_OF_NOVEMBER).get_data(as_text=True)
        summary = csv_rows(staff.get("/scorecard/summary.csv", query_string=FIRST_WEEK_OF_NOVEMBER))
    # To one decimal on the page: 4.7 h (rounding 4.75 again would make it 4.8).
    assert figures_on_page(page)["Referral to first touch, median"] == "4.7 h"
    # To two decimals in the file: 4.75.
    assert summary[0]["first_touch_median_hours"] == "4.75"


# --- First contact with the patient: a call or a link, whichever came first --------------


def touch(r, desk, at):
    services.record_first_touch(r, user(desk.intake), expected_version=None)


def patient_link(r, desk, at):
    slot = Slot(at + timedelta(days=7), AppointmentMode.VIDEO)
    send_next_step_link(
        r, user(desk.intake), expected_version=None, via=ContactMethod.EMAIL, slots=[slot]
    )


def test_first_contact_is_the_earlier_of_a_call_and_a_patient_link(app, desk):
    def story(sent, *, link=None, call=None):
        rid = send(desk, sent)
        steps = [(0.5, touch), (1, accept), (link, patient_link), (call, no_answer)]
        for hours, step in sorted((s for s in steps if s[0] is not None), key=lambda s: s[0]):
            with frozen_at(sent + hours * H):
                step(db.session.get(Referral, rid), desk, sent + hours * H)
                db.session.commit()

    with app.app_context():
        story(local(11, 2, 9), link=2, call=50)  # the link, 2 h after sending
        story(local(11, 3, 9), call=3, link=5)  # the call, 3 h
        story(local(11, 4, 9), link=7)  # a link and no call: 7 h
        story(local(11, 5, 9), call=9)  # a call and no link: 9 h
        (row,) = metrics.partner_months(NOVEMBER.scope())
        # First contacts 2, 3, 7, 9 hours after sending: median (3 + 7) / 2 = 5.
        assert (row.referrals, row.median_hours_to_first_contact) == (4, 5.0)


# --- Re-referral: 30 of the practice's days, across the clock change ---------------------

WEEK_OF_19_OCT = Period("week", date(2026, 10, 19), date(2026, 10, 25))


def test_thirty_days_are_the_practices_days_across_the_clock_change(app, desk):
    with app.app_context():
        # A: sent Tue 20 Oct 09:00 EDT (13:00 UTC); the next Thu 19 Nov 08:30 EST (13:30
        # UTC): 30 days later, half an hour before the same time of day (the clocks went
        # back on 1 Nov): within its 30 days, though 720 h 30 min of UTC time later.
        send(desk, local(10, 20, 9))
        send(desk, local(11, 19, 8, 30))
        # B: sent Wed 21 Oct 10:00 EDT; the next Fri 20 Nov 10:01 EST, a minute past its
        # 30 days: not within.
        send(desk, local(10, 21, 10), partner_email=desk.partner_b)
        send(desk, local(11, 20, 10, 1), partner_email=desk.partner_b)
        week = WEEK_OF_19_OCT.scope()
        share = metrics.re_referral_rate(week, NOW)
        assert (share.part, share.whole) == (1, 2)  # A followed, B not
        # A's 30 days end at 09:00 EST on 19 Nov, 14:00 UTC (720 h would be 13:00 UTC);
        # B's at 10:00 EST on 20 Nov, 15:00 UTC.
        counted = {
            moment: metrics.re_referral_rate(week, moment).whole
            for moment in (
                datetime(2026, 11, 19, 13, 59, 59, tzinfo=UTC),
                datetime(2026, 11, 19, 14, tzinfo=UTC),
                datetime(2026, 11, 20, 14, 59, 59, tzinfo=UTC),
                datetime(2026, 11, 20, 15, tzinfo=UTC),
            )
        }
        assert list(counted.values()) == [0, 1, 1, 2]
        assert metrics.re_referral_window_end(local(10, 20, 9)) == datetime(
            2026, 11, 19, 14, tzinfo=UTC
        )
        # In SQL, a period's submissions are cut where the length of their 30 days
        # changes: October's sent before 02:00 on 2 Oct end before the clocks go back
        # (720 h); from then on they end after it (721 h).
        assert metrics.window_lengths(OCTOBER.scope().start, OCTOBER.scope().end) == (
            metrics.WindowLength(datetime(2026, 10, 1, 4, tzinfo=UTC), timedelta(hours=720)),
            metrics.WindowLength(datetime(2026, 10, 2, 6, tzinfo=UTC), timedelta(hours=721)),
        )
        # The week ends at midnight 26 Oct EDT (04:00 UTC); its 30 days at midnight 25 Nov
        # EST (05:00 UTC): a stored copy is topped up until then, and not after.
        settles = datetime(2026, 11, 25, 5, tzinfo=UTC)
        assert not is_settled(week, settles - timedelta(seconds=1))
        assert is_settled(week, settles)


def test_a_stored_week_counts_the_practices_30_days_like_the_live_figure(app, desk, client_for):
    """Stored while the 30 days ran, the week's re-referral figures are topped up with
    the referrals whose 30 days ended since, by the same local-calendar rule."""
    with app.app_context():
        send(desk, local(10, 20, 9))
        send(desk, local(11, 19, 8, 30))
    week = {"period": "week", "on": "2026-10-19"}

    def re_referral(now):
        with frozen_at(now):
            page = client_for(desk.success).get("/scorecard", query_string=week)
        return figures_on_page(page.get_data(as_text=True))["Partner re-referral within 30 days"]

    assert re_referral(datetime(2026, 11, 19, 13, 30, tzinfo=UTC)) == "—"  # stored: none yet
    assert re_referral(datetime(2026, 11, 19, 14, tzinfo=UTC)) == "100.0%"  # topped up
    with app.app_context():
        live = metrics.re_referral_rate(WEEK_OF_19_OCT.scope(), NOW)
        assert (live.part, live.whole) == (1, 1)


def first_touch_after(app, desk, wait: timedelta) -> None:
    """One referral sent on Monday 2 November, first touched `wait` later."""
    with app.app_context():
        rid = send(desk, MONDAY_2_NOV)
        with frozen_at(MONDAY_2_NOV + wait):
            referral = db.session.get(Referral, rid)
            services.record_first_touch(referral, user(desk.intake), expected_version=None)
            db.session.commit()


def test_hours_ending_in_a_half_round_up_as_by_hand(app, desk, client_for):
    """First touch 4 h 15 min after sending: 4.25 h. By hand, to one decimal: 4.3 h.
    (Process ratings already round halves up: portal/scorecard/ratings.py.)"""
    first_touch_after(app, desk, timedelta(hours=4, minutes=15))
    with frozen_at(NOW):
        staff = client_for(desk.success)
        page = staff.get("/scorecard", query_string=FIRST_WEEK_OF_NOVEMBER).get_data(as_text=True)
    assert figures_on_page(page)["Referral to first touch, median"] == "4.3 h"


def test_a_percentage_ending_in_a_half_rounds_up_as_by_hand(app, desk, client_for):
    """16 referrals, one of them incomplete: 1 / 16 = 6.25 %, by hand 6.3 %."""
    with app.app_context():
        for i in range(16):
            send(
                desk,
                MONDAY_2_NOV + i * timedelta(minutes=1),
                service_line_id=desk.cardio_id,
                complete=(i != 0),
            )
    with frozen_at(NOW):
        staff = client_for(desk.success)
        page = staff.get("/scorecard", query_string=FIRST_WEEK_OF_NOVEMBER).get_data(as_text=True)
        summary = csv_rows(staff.get("/scorecard/summary.csv", query_string=FIRST_WEEK_OF_NOVEMBER))
    assert figures_on_page(page)["Referrals that needed information"] == "1"
    assert figures_on_page(page)["Incomplete referral rate"] == "6.3%"
    assert summary[0]["incomplete_percent"] == "6.3"


def test_csv_hours_ending_in_a_half_round_up_as_by_hand(app, desk, client_for):
    """First touch 7 min 30 s after sending: 0.125 h; to two decimals by hand: 0.13."""
    first_touch_after(app, desk, timedelta(minutes=7, seconds=30))
    with frozen_at(NOW):
        staff = client_for(desk.success)
        summary = csv_rows(staff.get("/scorecard/summary.csv", query_string=FIRST_WEEK_OF_NOVEMBER))
    assert summary[0]["first_touch_median_hours"] == "0.13"
