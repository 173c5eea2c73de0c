"""Headers, cookies, CSRF and the append-only audit log."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DatabaseError

from portal.extensions import db
from portal.models import AuditEntry
from tests.fixtures.desk import make_referral


def test_every_page_sends_the_security_headers(client):
    response = client.get("/sign-in")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "'unsafe-inline'" not in csp
    assert "frame-ancestors 'none'" in csp
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cache-Control"] == "no-store"


def test_pages_carry_no_inline_script(client_for, desk, app):
    with app.app_context():
        reference = make_referral(desk)
    client = client_for(desk.intake)
    for path in ("/queue", f"/referrals/{reference}", "/referrals/new"):
        html = client.get(path).get_data(as_text=True)
        for tag in html.split("<script")[1:]:
            assert 'src="' in tag.split(">")[0], f"inline script on {path}"
        assert " onclick=" not in html and "hx-on" not in html


def test_session_cookie_is_httponly_and_samesite(client, desk):
    response = client.post(
        "/sign-in", data={"email": desk.intake, "password": "correct horse battery"}
    )
    cookie = next(c for c in response.headers.getlist("Set-Cookie") if "portal_session" in c)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # the test config serves plain http


def test_production_config_marks_the_session_cookie_secure(app, desk):
    app.config["SESSION_COOKIE_SECURE"] = True
    client = app.test_client()
    page = client.get("/sign-in")
    assert page.status_code == 200
    cookie = next(c for c in page.headers.getlist("Set-Cookie") if "portal_session" in c)
    assert "Secure" in cookie


def test_forms_without_a_csrf_token_are_refused(app, client, desk):
    response = client.post(
        "/sign-in",
        data={"email": desk.intake, "password": "correct horse battery"},
        without_csrf=True,
    )
    assert response.status_code == 400
    assert "The form expired" in response.get_data(as_text=True)


def test_htmx_requests_without_the_csrf_header_are_refused(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk)
    client = client_for(desk.intake)
    response = client.post(
        f"/referrals/{reference}/actions/first_touch",
        data={"version": 1},
        headers={"HX-Request": "true"},
        without_csrf=True,
    )
    assert response.status_code == 400


def test_the_page_hands_htmx_the_csrf_header(client_for, desk):
    html = client_for(desk.intake).get("/queue").get_data(as_text=True)
    assert 'hx-headers=\'{"X-CSRFToken": "' in html


@pytest.mark.parametrize(
    "statement",
    ["UPDATE audit_entry SET action = 'tampered'", "DELETE FROM audit_entry"],
)
def test_the_audit_log_refuses_updates_and_deletes(app, client, desk, statement):
    client.post("/sign-in", data={"email": desk.intake, "password": "wrong"})
    with app.app_context():
        assert db.session.query(AuditEntry).count() == 1
        with pytest.raises(DatabaseError, match="append-only"):
            db.session.execute(text(statement))
        db.session.rollback()
        assert db.session.query(AuditEntry).one().action == "sign_in.failed"
