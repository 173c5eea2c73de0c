"""Error pages: what happened, what to do next, and a reference that matches the log."""

from __future__ import annotations

import io
import logging
from datetime import date

import pytest
from flask import abort
from sqlalchemy import select
from werkzeug.exceptions import TooManyRequests

from portal.database import build_engine
from portal.extensions import db
from portal.logging_config import format_handler
from portal.models import Holiday
from tests.integration.test_patient_links import send_link


@pytest.fixture
def broken_app(app):
    """The app with routes that fail in each way, and server errors handled as deployed
    (not re-raised into the test, as Flask does under TESTING)."""
    app.config["PROPAGATE_EXCEPTIONS"] = False

    def gone():
        abort(410)

    def too_many():
        raise TooManyRequests(retry_after=30)

    def crash():
        raise RuntimeError("the disk is on fire")

    def broken_write():
        # A failed statement leaves the session unusable until it is rolled back; the
        # error page itself queries (the navigation's unread badge) and must still work.
        db.session.add(Holiday(day=date(2026, 12, 25), name="One"))
        db.session.add(Holiday(day=date(2026, 12, 25), name="Two"))
        db.session.flush()

    def database_gone():
        # From here on every connection fails, as when the database server goes away.
        working = app.extensions["portal.db.engine"]
        app.extensions["portal.db.engine"] = build_engine(f"sqlite:///{missing_directory}/x.db")
        app.extensions["test.working_engine"] = working
        db.session.remove()
        db.session.execute(select(Holiday)).all()

    missing_directory = "/nonexistent-directory-for-the-portal-tests"
    app.add_url_rule("/test/database-gone", view_func=database_gone)
    app.add_url_rule("/test/gone", view_func=gone)
    app.add_url_rule("/test/too-many", view_func=too_many)
    app.add_url_rule("/test/crash", view_func=crash)
    app.add_url_rule("/test/broken-write", view_func=broken_write)
    app.add_url_rule("/p/test/crash", endpoint="patients.test_crash", view_func=crash)
    app.add_url_rule(
        "/p/<token>/database-gone",
        endpoint="patients.test_database_gone",
        view_func=lambda token: database_gone(),
    )
    return app


def reference_of(response) -> str:
    reference = response.headers["X-Request-ID"]
    assert len(reference) >= 12
    assert f"Reference: <code>{reference}</code>" in response.get_data(as_text=True)
    return reference


@pytest.mark.parametrize(
    ("signed_in", "method", "path", "status", "title"),
    [
        (None, "GET", "/no-such-page", 404, "Page not found"),
        (None, "GET", "/referrals/R-0000-000%00", 404, "Page not found"),
        ("intake", "GET", "/admin/partners/9223372036854775808", 404, "Page not found"),
        ("intake", "GET", "/queue?page=99999999999999999999", 400, "must be a whole number"),
        ("intake", "GET", "/queue?partner=1&partner=2", 400, "Send the “partner” parameter once"),
        ("clinical", "GET", "/admin/users", 403, "You cannot do this"),
        ("intake", "GET", "/sign-out", 405, "That cannot be done from here"),
        (None, "GET", "/test/gone", 410, "This page has gone"),
        (None, "GET", "/test/too-many", 429, "Too many attempts"),
        (None, "GET", "/test/crash", 500, "Sorry, there is a problem with the service"),
    ],
)
def test_each_error_has_a_page_with_what_to_do_and_a_reference(
    broken_app, desk, client, client_for, signed_in, method, path, status, title
):
    browser = client_for(getattr(desk, signed_in)) if signed_in else client
    response = browser.open(path, method=method)
    assert response.status_code == status
    html = response.get_data(as_text=True)
    assert title in html
    assert '<header class="site-header">' in html  # the portal's look, not a bare page
    assert "Go to the start page" in html
    reference_of(response)
    if status == 405:
        assert "POST" in response.headers["Allow"]
    if status == 429:
        assert response.headers["Retry-After"] == "30"


def test_a_server_error_is_logged_with_its_traceback_under_the_pages_reference(broken_app, client):
    output = io.StringIO()
    handler = format_handler(logging.StreamHandler(output), "text", "web")
    logger = logging.getLogger("portal")
    logger.addHandler(handler)
    try:
        response = client.get("/test/crash")
    finally:
        logger.removeHandler(handler)
    reference = reference_of(response)
    log = output.getvalue()
    assert f"[req={reference}] unhandled RuntimeError on GET crash" in log
    assert "Traceback" in log and "the disk is on fire" in log
    assert "the disk is on fire" not in response.get_data(as_text=True)


def test_a_failed_write_is_rolled_back_before_the_error_page_renders(broken_app, desk, client_for):
    # A partner's pages query the unread badge: that query needs a usable session.
    response = client_for(desk.partner_a).get("/test/broken-write")
    assert response.status_code == 500
    assert "Sorry, there is a problem with the service" in response.get_data(as_text=True)
    reference_of(response)
    with broken_app.app_context():
        assert db.session.query(Holiday).count() == 0


@pytest.mark.parametrize("htmx", [False, True])
def test_the_error_page_still_renders_when_the_database_is_gone(
    broken_app, desk, client_for, htmx
):
    browser = client_for(desk.partner_a)  # a partner's pages query for the unread badge
    try:
        response = browser.get(
            "/test/database-gone", headers={"HX-Request": "true"} if htmx else {}
        )
    finally:
        broken_app.extensions["portal.db.engine"] = broken_app.extensions.pop(
            "test.working_engine"
        )
    assert response.status_code == 500
    assert "Sorry, there is a problem with the service" in response.get_data(as_text=True)
    reference_of(response)


def test_htmx_requests_get_a_fragment_the_page_can_show(broken_app, desk, client_for):
    browser = client_for(desk.intake)
    for path, status in (("/referrals/R-0000-0000/timeline", 404), ("/test/crash", 500)):
        response = browser.get(path, headers={"HX-Request": "true"})
        assert response.status_code == status
        html = response.get_data(as_text=True)
        assert "<html" not in html
        assert 'role="alert"' in html
        reference_of(response)


def test_patient_pages_fail_in_the_practices_words_with_its_phone(broken_app, client):
    response = client.get("/p/not-a-real-token")
    html = response.get_data(as_text=True)
    assert response.status_code == 404
    assert "Northwind Telehealth" in html and "(202) 555-0100" in html
    assert '<body class="patient">' in html
    reference_of(response)

    response = client.get("/p/test/crash")
    html = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "Sorry, something went wrong on our side" in html
    assert "(202) 555-0100" in html and '<body class="patient">' in html
    assert "Sign in" not in html and "Referral portal" not in html
    reference_of(response)


def test_an_expired_patient_form_says_please_try_again_and_keeps_no_patient_data(
    broken_app, desk, client, client_for
):
    from portal.models import Status
    from tests.fixtures.desk import make_referral

    with broken_app.app_context():
        reference = make_referral(desk, Status.ACCEPTED)
    path = send_link(broken_app, client_for(desk.intake), reference)
    response = client.post(
        f"{path}/verify",
        data={"day": "14", "month": "3", "year": "1961"},
        without_csrf=True,
    )
    html = response.get_data(as_text=True)
    assert response.status_code == 400
    assert "Sorry, please try again" in html
    assert "(202) 555-0100" in html and '<body class="patient">' in html
    for patient_datum in ("Zephyrine", "Quillfeather", "1961", reference):
        assert patient_datum not in html
    reference_of(response)


def test_a_patients_error_page_still_renders_when_the_database_is_gone(
    broken_app, desk, client, client_for
):
    from portal.models import Status
    from tests.fixtures.desk import make_referral

    with broken_app.app_context():
        reference = make_referral(desk, Status.ACCEPTED)
    path = send_link(broken_app, client_for(desk.intake), reference)
    try:  # a real link's token: the error page looks for its language and cannot
        response = client.get(f"{path}/database-gone")
    finally:
        broken_app.extensions["portal.db.engine"] = broken_app.extensions.pop(
            "test.working_engine"
        )
    html = response.get_data(as_text=True)
    assert response.status_code == 500
    assert "Sorry, something went wrong on our side" in html and '<html lang="en">' in html
    reference_of(response)
