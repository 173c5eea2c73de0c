"""Headers, cookies, CSRF and the append-only audit log."""

from __future__ import annotations

import pytest
from sqlalchemy import select, text
from sqlalchemy.exc import DatabaseError

from portal.accounts.sessions import token_digest
from portal.extensions import db
from portal.models import AuditEntry, UserSession
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
        html = client.get(path, follow_redirects=True).get_data(as_text=True)
        for tag in html.split("<script")[1:]:
            assert 'src="' in tag.split(">")[0], f"inline script on {path}"
        assert " onclick=" not in html and "hx-on" not in html


def session_cookie(response) -> str:
    return next(
        c for c in response.headers.getlist("Set-Cookie") if c.startswith("portal_session=")
    )


def test_the_session_cookie_carries_only_a_random_token(app, client, desk):
    response = client.post(
        "/sign-in", data={"email": desk.partner_a, "password": "correct horse battery"}
    )
    cookie = session_cookie(response)
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Secure" not in cookie  # the test config serves plain http
    token = cookie.split(";", 1)[0].split("=", 1)[1]
    # An opaque random value: no user id, no signed payload to decode.
    assert len(token) == 43 and "." not in token
    with app.app_context():
        stored = db.session.scalars(select(UserSession.token_hash)).all()
    assert stored == [token_digest(token)] and token not in stored


def test_production_config_marks_the_session_cookie_secure(app, client, desk):
    app.config["SESSION_COOKIE_SECURE"] = True
    response = client.post(
        "/sign-in", data={"email": desk.partner_a, "password": "correct horse battery"}
    )
    assert "Secure" in session_cookie(response)


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


def test_client_addresses_ignore_x_forwarded_for_unless_a_proxy_is_trusted(database_url, desk):
    from portal import create_app
    from portal.config import TestConfig
    from tests.conftest import PortalClient

    forged = {"X-Forwarded-For": "6.6.6.6"}
    for hops, expected in ((0, "127.0.0.1"), (1, "6.6.6.6")):
        app = create_app(TestConfig, DATABASE_URL=database_url, TRUSTED_PROXY_COUNT=hops)
        app.test_client_class = PortalClient
        client = app.test_client()
        client.post("/sign-in", data={"email": desk.partner_a, "password": "x"}, headers=forged)
        with app.app_context():
            address = db.session.scalars(
                select(AuditEntry.address).order_by(AuditEntry.id.desc())
            ).first()
            db.engine.dispose()
        assert address == expected, hops
