"""The second factor: enrolment, codes used once, recovery codes, throttling, resets."""

from __future__ import annotations

import re
from datetime import timedelta

import pyotp
from sqlalchemy import select

from portal.clock import frozen_at, utcnow
from portal.extensions import db
from portal.models import AuditEntry, RecoveryCode, User, UserSession
from tests.fixtures.desk import PASSWORD, totp_code


def password_step(client, email, **kwargs):
    return client.post("/sign-in", data={"email": email, "password": PASSWORD}, **kwargs)


def enter_code(client, code, **kwargs):
    return client.post("/sign-in/code", data={"code": code}, **kwargs)


def account(app, email) -> User:
    with app.app_context():
        user = db.session.scalar(select(User).filter_by(email=email))
        db.session.expunge(user)
        return user


def actions(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def is_sent_to_sign_in(response) -> bool:
    return response.status_code == 302 and "/sign-in" in response.headers["Location"]


def test_staff_give_a_code_after_their_password(app, client, desk):
    response = password_step(client, desk.intake)
    assert response.headers["Location"].endswith("/sign-in/code")
    # The password alone opens nothing.
    assert is_sent_to_sign_in(client.get("/queue"))
    with app.app_context():
        code = totp_code(desk.intake)
    response = enter_code(client, code)
    assert response.status_code == 302 and response.headers["Location"].endswith("/queue")
    assert client.get("/queue").status_code == 200
    assert actions(app)[:2] == ["sign_in.password_accepted", "sign_in.succeeded"]


def test_the_pending_session_gets_a_new_token_once_the_code_is_given(app, client, desk):
    password_step(client, desk.intake)
    pending_token = client.get_cookie("portal_session").value
    with app.app_context():
        enter_code(client, totp_code(desk.intake))
    assert client.get_cookie("portal_session").value != pending_token
    with app.app_context():
        (row,) = db.session.scalars(select(UserSession)).all()
        assert row.authenticated and row.expires_at - row.created_at == timedelta(hours=12)


def test_a_code_cannot_be_used_twice(app, client, desk):
    with app.app_context():
        code = totp_code(desk.intake)
    password_step(client, desk.intake)
    assert enter_code(client, code).status_code == 302
    client.post("/sign-out")
    password_step(client, desk.intake)
    replay = enter_code(client, code)
    assert replay.status_code == 401
    assert "already used" in replay.get_data(as_text=True)


def test_a_code_from_the_previous_step_still_works_once(app, client, desk):
    with app.app_context():
        code = totp_code(desk.intake, utcnow() - timedelta(seconds=30))
    password_step(client, desk.intake)
    assert enter_code(client, code).status_code == 302


def test_wrong_codes_are_throttled_like_passwords(app, client, desk):
    password_step(client, desk.intake)
    start = utcnow()
    with frozen_at(start):
        for _ in range(5):
            assert enter_code(client, "000000").status_code == 401
        assert enter_code(client, "000000").status_code == 429
    with frozen_at(start + timedelta(seconds=2)):
        with app.app_context():
            code = totp_code(desk.intake)
        assert enter_code(client, code).status_code == 302


def test_recovery_codes_work_once_each(app, client, client_for, desk):
    admin = client_for(desk.admin)
    reset = admin.post(f"/admin/users/{account(app, desk.intake).id}/second-factor/reset")
    assert reset.status_code == 302
    codes = enrol(app, client, desk.intake)
    assert len(codes) == 10 and len(set(codes)) == 10
    client.post("/sign-out")

    password_step(client, desk.intake)
    response = enter_code(client, codes[0].upper())  # case and dashes do not matter
    assert response.status_code == 302
    assert "9 left" in client.get(response.headers["Location"]).get_data(as_text=True)
    client.post("/sign-out")
    password_step(client, desk.intake)
    assert enter_code(client, codes[0]).status_code == 401
    assert "mfa.recovery_code_used" in actions(app)
    with app.app_context():
        stored = db.session.scalars(select(RecoveryCode.code_hash)).all()
    assert not set(codes) & set(stored)  # only hashes are kept


def enrol(app, client, email) -> list[str]:
    """Sign in and set up the authenticator app; the recovery codes shown."""
    assert password_step(client, email).headers["Location"].endswith("/sign-in/code")
    page = client.get("/sign-in/set-up-code", follow_redirects=True)
    html = page.get_data(as_text=True)
    assert "<svg" in html and "QR code for your authenticator app" in html
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', html).group(1)
    wrong = client.post("/sign-in/set-up-code", data={"code": "123456"})
    assert wrong.status_code == 422
    for refused in ("", "\x00", "1" * 100_000):  # refused by the form, not by the check
        assert client.post("/sign-in/set-up-code", data={"code": refused}).status_code == 422
    done = client.post("/sign-in/set-up-code", data={"code": pyotp.TOTP(secret).now()})
    assert done.status_code == 200
    return re.findall(
        r"<li><code>([a-z2-9]{5}-[a-z2-9]{5})</code></li>", done.get_data(as_text=True)
    )


def test_staff_without_a_second_factor_set_one_up_at_sign_in(app, client, client_for, desk):
    client_for(desk.admin).post(
        f"/admin/users/{account(app, desk.clinical).id}/second-factor/reset"
    )
    codes = enrol(app, client, desk.clinical)
    assert len(codes) == 10
    assert client.get("/queue").status_code == 200
    assert account(app, desk.clinical).has_second_factor
    assert "mfa.enrolled" in actions(app)


def test_an_admin_reset_ends_sessions_and_is_audited(app, client_for, desk):
    intake = client_for(desk.intake)
    admin = client_for(desk.admin)
    response = admin.post(f"/admin/users/{account(app, desk.intake).id}/second-factor/reset")
    assert response.status_code == 302
    assert is_sent_to_sign_in(intake.get("/queue"))
    assert not account(app, desk.intake).has_second_factor
    assert {"mfa.reset", "session.ended_all"} <= set(actions(app))


def test_a_partner_user_may_turn_a_second_factor_on_and_off(app, client_for, client, desk):
    partner = client_for(desk.partner_a)
    html = partner.get("/sign-in/set-up-code").get_data(as_text=True)
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', html).group(1)
    done = partner.post("/sign-in/set-up-code", data={"code": pyotp.TOTP(secret).now()})
    assert "Save your recovery codes" in done.get_data(as_text=True)
    # From now on their sign-in asks for a code too.
    assert password_step(client, desk.partner_a).headers["Location"].endswith("/sign-in/code")
    later = utcnow() + timedelta(seconds=30)
    with frozen_at(later):
        off = partner.post(
            "/account/second-factor/off", data={"code": pyotp.TOTP(secret).at(later)}
        )
    assert off.status_code == 302
    assert not account(app, desk.partner_a).has_second_factor


def test_an_admin_can_require_a_second_factor_for_a_partners_users(app, client, client_for, desk):
    partner = client_for(desk.partner_a)
    admin = client_for(desk.admin)
    response = admin.post(
        f"/admin/partners/{desk.partner_a_id}/second-factor", data={"required": "yes"}
    )
    assert response.status_code == 302
    assert is_sent_to_sign_in(partner.get("/referrals/"))  # signed out at once
    assert client_for(desk.partner_b).get("/referrals/").status_code == 200  # other office
    assert password_step(client, desk.partner_a).headers["Location"].endswith("/sign-in/code")
    assert client.get("/sign-in/code").headers["Location"].endswith("/sign-in/set-up-code")


def test_partner_success_may_not_change_second_factor_rules(client_for, desk):
    response = client_for(desk.success).post(
        f"/admin/partners/{desk.partner_a_id}/second-factor", data={"required": "yes"}
    )
    assert response.status_code == 403


def test_new_recovery_codes_need_a_current_code(app, client_for, desk):
    intake = client_for(desk.intake)
    refused = intake.post("/account/recovery-codes", data={"code": "000000"})
    assert refused.status_code == 302
    with app.app_context():
        code = totp_code(desk.intake)
    fresh = intake.post("/account/recovery-codes", data={"code": code})
    assert len(re.findall(r"<li><code>", fresh.get_data(as_text=True))) == 10


def test_someone_else_with_the_password_never_sees_the_secret_being_set_up(
    app, client, client_for, desk
):
    from tests.conftest import PortalClient

    client_for(desk.admin).post(f"/admin/users/{account(app, desk.intake).id}/second-factor/reset")
    attacker = PortalClient(app, app.response_class, use_cookies=True)
    secrets_seen = []
    for browser in (client, attacker):
        password_step(browser, desk.intake)
        html = browser.get("/sign-in/set-up-code").get_data(as_text=True)
        secrets_seen.append(re.search(r'id="totp-secret">([A-Z2-7]+)<', html).group(1))
    mine, theirs = secrets_seen
    assert mine != theirs
    confirmed = client.post("/sign-in/set-up-code", data={"code": pyotp.TOTP(mine).now()})
    assert confirmed.status_code == 200
    # The attacker's secret was never confirmed, so it signs nobody in.
    late = PortalClient(app, app.response_class, use_cookies=True)
    password_step(late, desk.intake)
    later = utcnow() + timedelta(seconds=30)
    assert enter_code(late, pyotp.TOTP(theirs).at(later)).status_code == 401


def test_odd_codes_are_refused_not_errors(app, client, desk):
    password_step(client, desk.intake)
    for code in ("١٢٣٤٥٦", "１２３４５６", "12345\u0000", "x" * 40, "é" * 10):
        assert enter_code(client, code).status_code in (401, 422), code


def test_code_checks_inside_a_session_are_throttled_too(app, client_for, desk):
    intake = client_for(desk.intake)
    start = utcnow()
    with frozen_at(start):
        for _ in range(6):
            intake.post("/account/recovery-codes", data={"code": "000000"})
        with app.app_context():
            code = totp_code(desk.intake)
        refused = intake.post("/account/recovery-codes", data={"code": code}, follow_redirects=True)
    assert "Too many attempts" in refused.get_data(as_text=True)
    with app.app_context():
        assert db.session.query(RecoveryCode).count() == 0


def test_ids_too_large_for_the_database_are_not_found(client_for, desk):
    admin = client_for(desk.admin)
    for path in (
        f"/admin/users/{2**63}",
        f"/admin/users/{10**30}",
        "/admin/users/-1",
        f"/admin/users/1/sessions/{2**64}/end",
    ):
        method = admin.post if path.endswith("/end") else admin.get
        assert method(path).status_code == 404, path
    assert client_for(desk.intake).post(f"/account/sessions/{10**25}/end").status_code == 404
