"""The referring office rates the referral process, 1 to 5, once the referral has an
outcome: invited by the outcome notice, on a page that records nothing until posted;
staff read the figures per partner on the scorecard and the comments on the partner."""

from __future__ import annotations

import csv
import io
import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from portal.clock import frozen_at
from portal.extensions import db
from portal.models import AuditEntry, OutboxMessage, ProcessRating, Referral, Status, User
from portal.referrals import services
from portal.referrals.ratings import rate_process
from portal.scorecard.metrics import Scope
from portal.scorecard.ratings import ratings_by_partner
from tests.fixtures.desk import make_referral, user
from tests.integration.test_metrics import referral as built_referral

# A week of the practice's calendar (Monday 2 November 2026, New York time).
WEEK = "period=week&on=2026-11-02"
WEDNESDAY = datetime(2026, 11, 4, 15, tzinfo=UTC)
THE_WEEK = Scope(datetime(2026, 11, 2, 5, tzinfo=UTC), datetime(2026, 11, 9, 5, tzinfo=UTC))


def partner_emails(app, reference: str) -> list[OutboxMessage]:
    with app.app_context():
        rows = list(
            db.session.scalars(
                select(OutboxMessage)
                .join(Referral, Referral.id == OutboxMessage.referral_id)
                .where(
                    Referral.reference == reference,
                    OutboxMessage.recipient == "contact@alpha.example",
                )
                .order_by(OutboxMessage.id)
            )
        )
        db.session.expunge_all()
        return rows


def ratings(app) -> list[ProcessRating]:
    with app.app_context():
        rows = list(db.session.scalars(select(ProcessRating).order_by(ProcessRating.id)))
        db.session.expunge_all()
        return rows


def rating_path(reference: str) -> str:
    return f"/referrals/{reference}/rating"


@pytest.fixture
def settled(app, desk) -> str:
    """A referral of Alpha's declined as not eligible: it has its outcome."""
    with app.app_context():
        return make_referral(desk, Status.DECLINED)


# --- The invitation ---------------------------------------------------------------------


def test_the_outcome_notice_invites_a_rating_and_other_notices_do_not(app, desk, settled):
    *updates, outcome = partner_emails(app, settled)
    assert outcome.purpose == "partner_outcome"
    links = re.findall(r"^([1-5]): (\S+)$", outcome.body, re.MULTILINE)
    assert [score for score, _link in links] == ["1", "2", "3", "4", "5"]
    for score, link in links:
        # The random reference and the score: nothing about the patient.
        assert link == f"{app.config['PORTAL_BASE_URL']}/referrals/{settled}/rating?score={score}"
    assert "How did the referral process go for your office?" in outcome.body
    assert updates and all("/rating" not in message.body for message in updates)


def test_a_notice_after_the_office_rated_does_not_invite_again(app, client_for, desk, settled):
    client_for(desk.partner_a).post(rating_path(settled), data={"score": "4"})
    with app.app_context():
        referral = db.session.scalar(select(Referral).filter_by(reference=settled))
        services.share_follow_up(
            referral, user(desk.success), expected_version=None, message="Seen in clinic"
        )
        db.session.commit()
    follow_up = partner_emails(app, settled)[-1]
    assert "Follow-up" in follow_up.subject and "/rating" not in follow_up.body


# --- The page -----------------------------------------------------------------------------


def test_opening_a_rating_link_records_nothing_and_chooses_its_score(
    app, client_for, desk, settled
):
    response = client_for(desk.partner_a).get(f"{rating_path(settled)}?score=4")
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert re.search(r'<input checked[^>]*value="4"', html), html
    assert html.count('name="score"') == 5 and "Send my rating" in html
    assert ratings(app) == []


def test_posting_records_once_and_a_second_post_changes_that_rating(app, client_for, desk, settled):
    first = client_for(desk.partner_a)
    with frozen_at(WEDNESDAY):
        response = first.post(
            rating_path(settled), data={"score": "2", "comment": "  Slow to hear back.  "}
        )
    assert response.status_code == 302
    assert response.headers["Location"].endswith(f"/referrals/{settled}")
    page = first.get(f"/referrals/{settled}").get_data(as_text=True)
    assert "your rating of the referral process was recorded" in page
    assert "Your office rated it 2 of 5" in page and "Slow to hear back." in page
    (rating,) = ratings(app)
    assert (rating.score, rating.comment) == (2, "Slow to hear back.")

    # A colleague at the same office: the office's rating changes, no second one.
    later = WEDNESDAY + timedelta(days=1)
    colleague = client_for(desk.partner_a2)
    assert "Change my rating" in colleague.get(rating_path(settled)).get_data(as_text=True)
    with frozen_at(later):
        response = colleague.post(rating_path(settled), data={"score": "5", "comment": ""})
    assert response.status_code == 302
    (changed,) = ratings(app)
    assert changed.id == rating.id and (changed.score, changed.comment) == (5, "")
    assert (changed.created_at, changed.updated_at) == (WEDNESDAY, later)
    with app.app_context():
        assert changed.rated_by_id == user(desk.partner_a2).id
        audited = db.session.scalars(
            select(AuditEntry.detail).where(AuditEntry.action == "referral.process_rated")
        ).all()
    assert audited == [{"score": 2, "changed": False}, {"score": 5, "changed": True}]
    page = colleague.get(f"/referrals/{settled}").get_data(as_text=True)
    assert "rating of the referral process was changed" in page


def test_the_referral_page_offers_five_score_buttons_once_there_is_an_outcome(
    app, client_for, desk, settled
):
    with app.app_context():
        still_open = make_referral(desk, Status.ACCEPTED)
    partner = client_for(desk.partner_a)
    page = partner.get(f"/referrals/{settled}").get_data(as_text=True)
    form = page.split('id="rating"')[1].split("</form>")[0]
    assert f'action="/referrals/{settled}/rating"' in form
    assert '<label class="label" for="rating-comment">' in form
    assert re.findall(r'<button type="submit" name="score" value="(\d)"', form) == list("12345")
    assert "Rate the referral process" not in partner.get(f"/referrals/{still_open}").get_data(
        as_text=True
    )
    staff_view = client_for(desk.intake).get(f"/referrals/{settled}").get_data(as_text=True)
    assert "Rate the referral process" not in staff_view


# --- Who, when and what -------------------------------------------------------------------


def test_another_partners_user_gets_404_and_staff_403(app, client_for, desk, settled):
    beta = client_for(desk.partner_b)
    assert beta.get(f"{rating_path(settled)}?score=4").status_code == 404
    assert beta.post(rating_path(settled), data={"score": "4"}).status_code == 404
    staff = client_for(desk.success)
    assert staff.post(rating_path(settled), data={"score": "4"}).status_code == 403
    assert ratings(app) == []


def test_rating_before_the_outcome_is_refused(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.SCHEDULED)
    partner = client_for(desk.partner_a)
    for response in (
        partner.get(f"{rating_path(reference)}?score=4"),
        partner.post(rating_path(reference), data={"score": "4"}),
    ):
        assert response.status_code == 409
        assert "once the referral has reached an outcome" in response.get_data(as_text=True)
    assert ratings(app) == []


def test_the_form_needs_its_csrf_token(app, client_for, desk, settled):
    response = client_for(desk.partner_a).post(
        rating_path(settled), data={"score": "4"}, without_csrf=True
    )
    assert response.status_code == 400 and ratings(app) == []


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"score": "99999999999999999999"}, "Choose a score from 1 to 5."),
        ({"score": "4\x00"}, "Choose a score from 1 to 5."),
        ({"score": "0"}, "Choose a score from 1 to 5."),
        ({"score": "6"}, "Choose a score from 1 to 5."),
        ({"score": "4.0"}, "Choose a score from 1 to 5."),
        ({"score": ""}, "Choose a score from 1 to 5."),
        ({"comment": "Fine"}, "Choose a score from 1 to 5."),
        ({"score": ["4", "5"]}, "This was sent more than once"),
        ({"score": "4", "comment": ["Good", "Bad"]}, "This was sent more than once"),
        ({"score": "4", "comment": "x" * 1001}, "Use at most 1,000 characters"),
        ({"score": "4", "comment": "a\x00b"}, "Remove the control"),
    ],
)
def test_hostile_input_is_refused_with_a_reason_and_stores_nothing(
    app, client_for, desk, settled, data, message
):
    response = client_for(desk.partner_a).post(rating_path(settled), data=data)
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)
    assert ratings(app) == []


@pytest.mark.parametrize(
    "query", ["score=99999999999999999999", "score=4%00", "score=9", "score=4&score=5"]
)
def test_a_hostile_score_in_the_link_is_a_400(client_for, desk, settled, query):
    response = client_for(desk.partner_a).get(f"{rating_path(settled)}?{query}")
    assert response.status_code == 400
    assert "score" in response.get_data(as_text=True)


# --- What staff read ----------------------------------------------------------------------


@pytest.fixture
def rated_week(app, desk):
    """Alpha: four outcomes in the week rated 5, 4, 4, 1 in the week, a fifth outcome not
    rated, and one outcome and rating the week before. Beta: one outcome in the week,
    rated the week after. By hand: Alpha 4 ratings, mean 14 / 4 = 3.5, 4 of its 5
    outcomes rated (80 %); Beta no rating in the week, its one outcome rated (100 %)."""
    with app.app_context():
        for score in (5, 4, 4, 1):
            rate(built_referral(desk, WEDNESDAY, outcome_at=WEDNESDAY), score, WEDNESDAY)
        built_referral(desk, WEDNESDAY, outcome_at=WEDNESDAY)
        before = WEDNESDAY - timedelta(days=7)
        rate(built_referral(desk, before, outcome_at=before), 2, before)
        beta = built_referral(desk, WEDNESDAY, partner_id=desk.partner_b_id, outcome_at=WEDNESDAY)
        rate(beta, 3, WEDNESDAY + timedelta(days=7), comment="Quick and clear")
        db.session.commit()


def rate(row: Referral, score: int, at: datetime, comment: str = "") -> None:
    """The office rates the hand-built referral at `at`, settled by then."""
    row.status = Status.COMPLETED
    office = db.session.scalars(select(User).where(User.partner_id == row.partner_id)).first()
    with frozen_at(at):
        rate_process(row, office, score, comment)


ALPHA_ROW = ["Alpha Primary Care", "4", "3.5", "1", "0", "0", "2", "1", "5", "4", "80.0"]
BETA_ROW = ["Beta Cardiology", "0", "", "0", "0", "0", "0", "0", "1", "1", "100.0"]


def test_the_scorecard_figures_equal_the_hand_computed_ones(app, desk, rated_week, count_queries):
    with app.app_context():
        with count_queries() as counted:
            alpha, beta = ratings_by_partner(THE_WEEK)
        assert counted.count == 1
        assert (alpha.partner, alpha.ratings, alpha.mean_score) == ("Alpha Primary Care", 4, 3.5)
        assert alpha.by_score == (1, 0, 0, 2, 1)
        assert (alpha.outcomes, alpha.rated_outcomes, alpha.rated_share) == (5, 4, 0.8)
        assert (beta.ratings, beta.mean_score, beta.outcomes, beta.rated_outcomes) == (
            0,
            None,
            1,
            1,
        )
        (only_beta,) = ratings_by_partner(Scope(THE_WEEK.start, THE_WEEK.end, desk.partner_b_id))
        assert only_beta == beta


def test_the_scorecard_page_and_its_csv_show_the_same_figures(client_for, desk, rated_week):
    staff = client_for(desk.success)
    response = staff.get(f"/scorecard/process_ratings.csv?{WEEK}")
    assert response.status_code == 200
    header, *rows = csv.reader(io.StringIO(response.get_data(as_text=True).lstrip("\ufeff")))
    assert header[:3] == ["partner", "ratings", "mean_score"]
    assert header[-3:] == ["outcome_referrals", "rated_outcome_referrals", "rated_outcome_percent"]
    assert rows == [ALPHA_ROW, BETA_ROW]
    narrowed = staff.get(f"/scorecard/process_ratings.csv?{WEEK}&partner={desk.partner_b_id}")
    assert list(csv.reader(io.StringIO(narrowed.get_data(as_text=True))))[1:] == [BETA_ROW]

    page = staff.get(f"/scorecard?{WEEK}").get_data(as_text=True)
    section = page.split('id="table-process_ratings"')[1].split("</section>")[0]
    assert "Process ratings by partner" in section
    assert "<td>Alpha Primary Care</td><td>4</td><td>3.5</td>" in section
    assert "<td>80%</td>" in section or "<td>80.0%</td>" in section
    dictionary = staff.get("/exports/dictionary").get_data(as_text=True)
    assert "mean_score" in dictionary and "rated_outcome_percent" in dictionary


def test_partners_do_not_get_the_ratings_table(client_for, desk, rated_week):
    partner = client_for(desk.partner_a)
    assert partner.get(f"/dashboard/process_ratings.csv?{WEEK}").status_code == 404
    assert "Process ratings" not in partner.get(f"/dashboard?{WEEK}").get_data(as_text=True)


def test_staff_read_the_newest_comments_on_the_partner_page_escaped(app, client_for, desk):
    with app.app_context():
        for day in range(21):
            at = WEDNESDAY + timedelta(days=day)
            row = built_referral(desk, at, outcome_at=at)
            rate(row, 4, at, comment=f"<script>alert({day})</script>\nday {day}")
        built_referral_without_comment = built_referral(desk, WEDNESDAY, outcome_at=WEDNESDAY)
        rate(built_referral_without_comment, 1, WEDNESDAY + timedelta(days=30))
        db.session.commit()
    page = client_for(desk.success).get(f"/admin/partners/{desk.partner_a_id}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Comments on the referral process" in html
    section = html.split("Comments on the referral process")[1].split("</table>")[0]
    assert "<script>" not in section and "&lt;script&gt;alert(20)&lt;/script&gt;" in section
    shown = [int(day) for day in re.findall(r"day (\d+)", section)]
    assert shown == list(range(20, 0, -1))  # the newest 20, newest first
    assert "1 of 5" not in section  # a rating without a comment is not listed
    beta = client_for(desk.success).get(f"/admin/partners/{desk.partner_b_id}")
    assert "No comments yet." in beta.get_data(as_text=True)


def test_the_rating_page_costs_the_same_whatever_the_partner_has_rated(
    app, desk, client_for, count_queries
):
    """Its statements: session and user; the referral; the referral's rating; the audit
    row; the unread badge. The same with one referral rated as with many."""
    with app.app_context():
        reference = make_referral(desk, Status.DECLINED)
    partner = client_for(desk.partner_a)
    path = rating_path(reference) + "?score=4"
    assert partner.get(path).status_code == 200  # warm
    with count_queries() as few:
        assert partner.get(path).status_code == 200
    with app.app_context():
        for _ in range(5):
            other = db.session.scalar(
                select(Referral).filter_by(reference=make_referral(desk, Status.DECLINED))
            )
            rate_process(other, user(desk.partner_a), 3, "fine")
        db.session.commit()
    with count_queries() as many:
        assert partner.get(path).status_code == 200
    assert many.count == few.count
    assert few.count == 5, few.count
