"""One referral, not two: Back after sending, the same patient sent again, and phones."""

from __future__ import annotations

import re
from datetime import date, timedelta
from html import unescape
from urllib.parse import parse_qs, urlsplit

import phonenumbers
import pytest
from flask import render_template
from sqlalchemy import select

from portal.clock import utcnow
from portal.extensions import db
from portal.models import Partner, Referral, ReferralEvent, Status
from portal.referrals.duplicates import find_possible_duplicate
from tests.fixtures.desk import make_referral
from tests.integration.test_submission import form_data, referral_count

REFERENCE = r"R-[0-9A-Z]{4}-[0-9A-Z]{4}"


def open_form(client) -> str:
    """Open the form as the navigation link does; returns the token its URL carries."""
    response = client.get("/referrals/new")
    assert response.status_code == 302
    token = parse_qs(urlsplit(response.headers["Location"]).query)["form"][0]
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f'name="submission_token" type="hidden" value="{token}"' in page
    return token


def referral(app, reference: str) -> Referral:
    with app.app_context():
        row = db.session.scalar(select(Referral).where(Referral.reference == reference))
        db.session.expunge(row)
        return row


def newest_referral(app) -> Referral:
    with app.app_context():
        row = db.session.scalar(select(Referral).order_by(Referral.id.desc()))
        db.session.expunge(row)
        return row


# --- Back after sending ---------------------------------------------------------------


def test_each_opened_form_gets_its_own_token_in_its_url(client_for, desk):
    client = client_for(desk.partner_a)
    first, second = open_form(client), open_form(client)
    assert first != second and len(first) == 32


def test_back_after_sending_shows_already_submitted_with_a_link_and_creates_nothing(
    app, client_for, desk
):
    client = client_for(desk.partner_a)
    token = open_form(client)
    sent = client.post(f"/referrals/new?form={token}", data=form_data(desk, submission_token=token))
    assert sent.status_code == 302
    reference = re.search(REFERENCE, sent.headers["Location"]).group(0)

    back = client.get(f"/referrals/new?form={token}")
    html = back.get_data(as_text=True)
    assert back.status_code == 200
    assert "This referral was already submitted" in html
    assert f'href="/referrals/{reference}"' in html
    assert 'name="patient_first_name"' not in html  # no blank form to retype
    assert referral_count(app) == 1

    # Sending the old page again anyway still returns the first referral.
    again = client.post(
        f"/referrals/new?form={token}", data=form_data(desk, submission_token=token)
    )
    assert again.headers["Location"] == sent.headers["Location"]
    assert referral_count(app) == 1


def test_staff_entering_a_referral_get_the_same_back_behaviour(app, client_for, desk):
    client = client_for(desk.intake)
    token = open_form(client)
    data = form_data(
        desk, submission_token=token, partner=str(desk.partner_b_id), source_channel="fax"
    )
    assert client.post(f"/referrals/new?form={token}", data=data).status_code == 302
    html = client.get(f"/referrals/new?form={token}").get_data(as_text=True)
    assert "This referral was already submitted" in html
    assert referral_count(app) == 1


def test_another_offices_form_token_opens_a_blank_form_and_reveals_nothing(app, client_for, desk):
    alpha = client_for(desk.partner_a)
    token = open_form(alpha)
    alpha.post(f"/referrals/new?form={token}", data=form_data(desk, submission_token=token))
    response = client_for(desk.partner_b).get(f"/referrals/new?form={token}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "already submitted" not in html and not re.search(REFERENCE, html)
    assert 'name="patient_first_name"' in html


@pytest.mark.parametrize(
    "token", ["short", "x" * 65, "has space in it 1234", "<script>abcdefghijk"]
)
def test_a_malformed_form_token_is_refused(client_for, desk, token):
    assert (
        client_for(desk.partner_a).get("/referrals/new", query_string={"form": token}).status_code
        == 400
    )


def test_a_posted_form_without_a_usable_token_is_refused(app, client_for, desk):
    client = client_for(desk.partner_a)
    response = client.post("/referrals/new", data=form_data(desk, submission_token="x"))
    assert response.status_code == 422
    assert "reload the page" in response.get_data(as_text=True)
    assert referral_count(app) == 0


def test_choosing_a_service_line_still_shows_its_requirements_without_javascript(client_for, desk):
    client = client_for(desk.partner_a)
    token = open_form(client)
    response = client.post(
        f"/referrals/new?form={token}",
        data={
            "submission_token": token,
            "service_line": str(desk.cardio_id),
            "show_requirements": "1",
        },
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert "Echocardiogram report" in html
    assert f'value="{token}"' in html  # the same form, the same key


# --- The same patient sent again --------------------------------------------------------


def test_same_patient_from_the_same_office_warns_and_creates_nothing(app, client_for, desk):
    with app.app_context():
        earlier = make_referral(desk, Status.IN_REVIEW)
    client = client_for(desk.partner_a2)  # a colleague at the same office
    # Names compared without regard to case or stray spaces.
    data = form_data(desk, patient_first_name=" zephyrine ", patient_last_name="QUILLFEATHER")
    response = client.post("/referrals/new", data=data)
    html = unescape(response.get_data(as_text=True))
    assert response.status_code == 409
    assert "This patient may already have been referred" in html
    assert f'href="/referrals/{earlier}"' in html
    assert "In review" in html
    assert 'name="submit_anyway"' in html and "Submit anyway" in html
    assert 'value="QUILLFEATHER"' in html  # what they typed is kept
    assert referral_count(app) == 1


def test_submit_anyway_creates_one_marked_referral_with_a_timeline_event_and_queue_badge(
    app, client_for, desk
):
    with app.app_context():
        earlier = make_referral(desk)
    partner = client_for(desk.partner_a)
    response = partner.post("/referrals/new", data=form_data(desk, submit_anyway="1"))
    assert response.status_code == 302
    assert referral_count(app) == 2
    created = newest_referral(app)
    assert created.possible_duplicate_of_id == referral(app, earlier).id
    with app.app_context():
        event = db.session.scalar(
            select(ReferralEvent).where(
                ReferralEvent.referral_id == created.id, ReferralEvent.kind == "possible_duplicate"
            )
        )
    assert event.summary.startswith(
        f"Submitted as a new referral although {earlier} for the same patient was sent on "
    )
    assert event.partner_visible

    partner_page = partner.get(f"/referrals/{created.reference}").get_data(as_text=True)
    assert f"although {earlier} for the same patient" in partner_page

    intake = client_for(desk.intake)
    queue = intake.get("/queue").get_data(as_text=True)
    row = next(r for r in queue.split("<tr") if created.reference in r)
    assert "Possible duplicate of" in row and f'href="/referrals/{earlier}"' in row
    staff_page = intake.get(f"/referrals/{created.reference}").get_data(as_text=True)
    header = staff_page.split("</h1>")[1].split("</div>")[0]
    assert "Possible duplicate of" in header and earlier in header


def test_the_same_patient_from_another_office_gets_no_warning_and_no_hint(app, client_for, desk):
    with app.app_context():
        alphas = make_referral(desk)
    beta = client_for(desk.partner_b)
    response = beta.post("/referrals/new", data=form_data(desk))
    assert response.status_code == 302
    created = newest_referral(app)
    assert created.partner_id == desk.partner_b_id
    assert created.possible_duplicate_of_id is None
    for path in (response.headers["Location"], f"/referrals/{created.reference}"):
        html = beta.get(path).get_data(as_text=True)
        assert alphas not in html and "duplicate" not in html.lower()


def test_staff_entering_for_an_office_are_warned_of_that_offices_referrals_only(
    app, client_for, desk
):
    with app.app_context():
        alphas = make_referral(desk)
    intake = client_for(desk.intake)
    for_beta = form_data(desk, partner=str(desk.partner_b_id), source_channel="phone")
    assert intake.post("/referrals/new", data=for_beta).status_code == 302
    for_alpha = form_data(
        desk,
        partner=str(desk.partner_a_id),
        source_channel="phone",
        submission_token="token-" + "b" * 20,
    )
    response = intake.post("/referrals/new", data=for_alpha)
    assert response.status_code == 409
    html = response.get_data(as_text=True)
    assert alphas in html and "Alpha Primary Care sent" in html


def test_an_earlier_referral_outside_the_window_does_not_warn(app, client_for, desk):
    with app.app_context():
        earlier = make_referral(desk)
        row = db.session.scalar(select(Referral).where(Referral.reference == earlier))
        row.submitted_at = utcnow() - timedelta(days=app.config["DUPLICATE_WINDOW_DAYS"], hours=1)
        db.session.commit()
    client = client_for(desk.partner_a)
    assert client.post("/referrals/new", data=form_data(desk)).status_code == 302
    assert newest_referral(app).possible_duplicate_of_id is None


def test_the_window_is_a_setting(app, client_for, desk):
    app.config["DUPLICATE_WINDOW_DAYS"] = 90
    with app.app_context():
        earlier = make_referral(desk)
        row = db.session.scalar(select(Referral).where(Referral.reference == earlier))
        row.submitted_at = utcnow() - timedelta(days=60)
        db.session.commit()
    response = client_for(desk.partner_a).post("/referrals/new", data=form_data(desk))
    assert response.status_code == 409


def test_a_settled_earlier_referral_does_not_warn(app, client_for, desk):
    with app.app_context():
        make_referral(desk, Status.WITHDRAWN)
    response = client_for(desk.partner_a).post("/referrals/new", data=form_data(desk))
    assert response.status_code == 302


def test_a_different_date_of_birth_or_name_is_another_patient(app, client_for, desk):
    with app.app_context():
        make_referral(desk)
    client = client_for(desk.partner_a)
    other_birthday = form_data(desk, patient_date_of_birth="1961-03-15")
    assert client.post("/referrals/new", data=other_birthday).status_code == 302
    other_name = form_data(desk, patient_first_name="Zephyr", submission_token="token-" + "c" * 20)
    assert client.post("/referrals/new", data=other_name).status_code == 302


def test_the_check_is_one_select_and_sees_only_the_office(app, desk, count_queries):
    with app.app_context():
        earlier = make_referral(desk)
        alpha = db.session.get(Partner, desk.partner_a_id)
        beta = db.session.get(Partner, desk.partner_b_id)
        with count_queries() as queries:
            found = find_possible_duplicate(alpha, "ZEPHYRINE", "quillfeather", date(1961, 3, 14))
        assert queries.count == 1
        assert found.reference == earlier
        assert found.service_line.name  # loaded with it, for the warning
        assert find_possible_duplicate(beta, "Zephyrine", "Quillfeather", date(1961, 3, 14)) is None


# --- Phones -------------------------------------------------------------------------------


def test_the_phone_error_example_is_itself_accepted(app, client_for, desk):
    client = client_for(desk.partner_a)
    refused = client.post("/referrals/new", data=form_data(desk, patient_phone="call me"))
    example = re.search(r"Enter a phone number, like (.+?)\.<", refused.get_data(as_text=True))
    example = unescape(example.group(1))
    assert phonenumbers.is_valid_number(phonenumbers.parse(example, "US"))
    accepted = client.post("/referrals/new", data=form_data(desk, patient_phone=example))
    assert accepted.status_code == 302


def test_phones_show_in_national_format_with_a_tel_link(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk)  # stored as +12025550143
        db.session.get(Partner, desk.partner_a_id).referral_contact_phone = "+12025550188"
        db.session.commit()
        assert referral(app, reference).patient_phone == "+12025550143"
    link = '<a href="tel:+12025550143">(202) 555-0143</a>'
    assert link in client_for(desk.partner_a).get(f"/referrals/{reference}").get_data(as_text=True)
    assert link in client_for(desk.intake).get(f"/referrals/{reference}").get_data(as_text=True)
    partner_page = client_for(desk.admin).get(f"/admin/partners/{desk.partner_a_id}")
    assert '<a href="tel:+12025550188">(202) 555-0188</a>' in partner_page.get_data(as_text=True)
    with app.test_request_context():
        patient_page = render_template(
            "patients/problem.html", problem="expired", phone=app.config["PRACTICE_PHONE"]
        )
    assert '<a href="tel:+12025550100">(202) 555-0100</a>' in patient_page
