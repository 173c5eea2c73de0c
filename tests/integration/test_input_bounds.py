"""The hostile inputs the sweep found, each answered with a 4xx and a clear message.

tests/integration/test_hostile_input.py sends thousands of values everywhere; these
are the cases named in the issue, spelled out so a failure reads like the product.
"""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import PatientLink, Referral, SignInAttempt, Status
from tests.fixtures.desk import make_referral
from tests.integration.test_patient_links import load, send_link

# 2**31 and 2**63 - 1 are past PostgreSQL's INTEGER columns, which refuse to compare them.
HUGE = ["2147483648", "9223372036854775807", "9223372036854775808", "1" + "0" * 30]


@pytest.mark.parametrize("huge", HUGE)
@pytest.mark.parametrize(
    "path",
    [
        "/admin/partners/{huge}",
        "/admin/service-lines/{huge}",
        "/admin/users/{huge}",
        "/referrals/{reference}/documents/{huge}",
    ],
)
def test_ids_past_what_a_column_holds_are_not_found(app, desk, client_for, path, huge):
    with app.app_context():
        reference = make_referral(desk)
    response = client_for(desk.admin).get(path.format(huge=huge, reference=reference))
    assert response.status_code == 404


@pytest.mark.parametrize("huge", HUGE)
@pytest.mark.parametrize(
    ("path", "parameter"),
    [
        ("/queue", "page"),
        ("/queue", "partner"),
        ("/queue", "service_line"),
        ("/admin/audit", "page"),
        ("/scorecard", "partner"),
        ("/scorecard/summary.csv", "partner"),
    ],
)
def test_integer_parameters_past_what_a_column_holds_are_a_bad_request(
    desk, client_for, path, parameter, huge
):
    response = client_for(desk.admin).get(f"{path}?{parameter}={huge}")
    assert response.status_code == 400
    assert f"“{parameter}” must be a whole number" in response.get_data(as_text=True)


def test_the_partners_page_number_is_bounded_too(desk, client_for):
    response = client_for(desk.partner_a).get("/referrals/?page=9223372036854775808")
    assert response.status_code == 400


def test_the_breach_form_refuses_a_huge_clock_id(app, desk, client_for):
    with app.app_context():
        reference = make_referral(desk)
    response = client_for(desk.intake).post(
        f"/referrals/{reference}/breaches/9223372036854775808", data={"reason": "Staffing"}
    )
    assert response.status_code == 404


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/referrals/%00", 404),
        ("/referrals/R-AAAA-AAA%00", 404),
        ("/queue?q=%00", 400),
        ("/queue?q=R-AAAA%00", 400),
        ("/admin/audit?target=%00", 400),
    ],
)
def test_nul_in_a_path_or_search_is_refused_before_any_query(desk, client_for, path, expected):
    response = client_for(desk.admin).get(path)
    assert response.status_code == expected


def test_nul_in_the_sign_in_email_is_a_form_error_and_records_nothing(app, client):
    response = client.post("/sign-in", data={"email": "a\x00@x.example", "password": "x"})
    assert response.status_code == 422
    assert "Remove the control characters" in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(func.count()).select_from(SignInAttempt)) == 0


@pytest.mark.parametrize(
    ("date_of_birth", "message"),
    [
        ({"day": "1" + "0" * 30, "month": "3", "year": "1961"}, "Use at most 2 characters"),
        ({"day": "14", "month": "99999999999999999999", "year": "1961"}, "Use at most 2"),
        ({"day": "14", "month": "3", "year": "9" * 5000}, "Use at most 4 characters"),
        ({"day": "30", "month": "2", "year": "1961"}, "That month has only 28 days"),
        ({"day": "14", "month": "3", "year": "0"}, "Enter all 4 numbers of the year"),
        ({"day": "14", "month": "3", "year": "196\x00"}, "Remove the control characters"),
    ],
)
def test_a_patients_impossible_date_of_birth_is_a_form_error_not_a_try(
    app, desk, client, client_for, date_of_birth, message
):
    with app.app_context():
        reference = make_referral(desk, Status.ACCEPTED)
    path = send_link(app, client_for(desk.intake), reference)
    response = client.post(f"{path}/verify", data=date_of_birth)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalar(select(PatientLink.failed_attempts)) == 0


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01", "2026-02-30"])
def test_an_appointment_at_the_edge_of_the_calendar_is_a_form_error(app, desk, client_for, day):
    with app.app_context():
        reference = make_referral(desk, Status.ACCEPTED)
    version = load(app, reference).version
    response = client_for(desk.intake).post(
        f"/referrals/{reference}/actions/schedule",
        data={
            "version": version,
            "appointment_date": day,
            "appointment_time": "10:00",
            "mode": "video",
        },
    )
    assert response.status_code == 422
    with app.app_context():
        referral = db.session.scalar(select(Referral).filter_by(reference=reference))
        assert referral.status is Status.ACCEPTED
        assert referral.appointment_at is None


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01", "2026-02-30", "20261-01-01"])
@pytest.mark.parametrize("path", ["/scorecard", "/scorecard/summary.csv"])
def test_scorecard_dates_at_the_edge_of_the_calendar_are_a_bad_request(desk, client_for, path, day):
    response = client_for(desk.success).get(f"{path}?period=week&on={day}")
    assert response.status_code == 400
    assert "must be a date written like 2026-11-02" in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/sign-in", "/referrals/new", "/account/password"])
def test_a_form_part_without_a_name_is_a_bad_request(app, desk, client_for, path):
    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = client_for(desk.partner_a).post(
        path,
        data=b"--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n",
        content_type="multipart/form-data; boundary=b",
    )
    assert response.status_code == 400
    assert "Every part of a form needs a name." in response.get_data(as_text=True)


@pytest.mark.parametrize("path", ["/sign-in", "/queue", "/p/abc", "/healthz"])
def test_a_host_header_werkzeug_refuses_is_a_plain_bad_request(app, desk, client_for, path):
    app.config["PROPAGATE_EXCEPTIONS"] = False
    response = client_for(desk.intake).get(path, headers={"Host": "a" * 64 + ".example"})
    assert response.status_code == 400
