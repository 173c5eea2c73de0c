"""Signing in and out, server-side sessions, throttling, argon2 and invitations."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import event, select

from portal.accounts.services import GENERIC_SIGN_IN_ERROR
from portal.clock import frozen_at, utcnow
from portal.extensions import db
from portal.models import AuditEntry, Invitation, Role, User, UserSession
from tests.fixtures.desk import PASSWORD, make_referral


def sign_in(client, email, password=PASSWORD, **kwargs):
    return client.post("/sign-in", data={"email": email, "password": password}, **kwargs)


def audit_actions(app) -> list[str]:
    with app.app_context():
        return [e.action for e in db.session.scalars(select(AuditEntry).order_by(AuditEntry.id))]


def new_client(app):
    from tests.conftest import PortalClient

    return PortalClient(app, app.response_class, use_cookies=True)


def with_cookie(app, token):
    """A different browser holding a copy of someone's session cookie."""
    thief = new_client(app)
    thief.set_cookie(app.config["AUTH_COOKIE_NAME"], token)
    return thief


def is_sent_to_sign_in(response) -> bool:
    return response.status_code == 302 and "/sign-in" in response.headers["Location"]


def test_each_role_lands_where_its_work_is(client_for, desk):
    expected = {
        desk.partner_a: "/referrals/",
        desk.intake: "/queue",
        desk.clinical: "/queue",
        desk.success: "/queue",
        desk.admin: "/admin/partners",
    }
    for email, home in expected.items():
        assert client_for(email).get("/").headers["Location"].endswith(home)


def test_wrong_password_and_unknown_email_get_the_same_generic_message(app, client, desk):
    wrong_password = sign_in(client, desk.intake, "not the password")
    unknown = sign_in(client, "nobody@desk.example")
    for response in (wrong_password, unknown):
        assert response.status_code == 401
        assert GENERIC_SIGN_IN_ERROR in response.get_data(as_text=True)
    assert audit_actions(app) == ["sign_in.failed", "sign_in.failed"]


def test_a_partner_signs_in_with_a_password_and_gets_a_session_row(app, client, desk):
    response = sign_in(client, desk.partner_a)
    assert response.status_code == 302 and response.headers["Location"].endswith("/referrals/")
    assert audit_actions(app) == ["sign_in.succeeded"]
    with app.app_context():
        user = db.session.scalar(select(User).filter_by(email=desk.partner_a))
        assert user.last_sign_in_at
        (row,) = db.session.scalars(select(UserSession)).all()
        assert row.user_id == user.id and row.authenticated and row.address == "127.0.0.1"
        assert row.expires_at - row.created_at == timedelta(hours=12)


def test_sign_out_ends_the_session_on_the_server(app, client, desk):
    client.sign_in(desk.intake)
    token = client.get_cookie(app.config["AUTH_COOKIE_NAME"]).value
    assert with_cookie(app, token).get("/queue").status_code == 200

    assert client.post("/sign-out").status_code == 302
    assert is_sent_to_sign_in(client.get("/queue"))
    # The copied cookie is dead too: its row is gone.
    assert is_sent_to_sign_in(with_cookie(app, token).get("/queue"))
    with app.app_context():
        assert db.session.query(UserSession).count() == 0
    assert audit_actions(app)[-1] == "session.ended"


def test_a_made_up_or_tampered_cookie_signs_nobody_in(app, client_for, desk):
    token = client_for(desk.intake).get_cookie(app.config["AUTH_COOKIE_NAME"]).value
    for forged in ("1", token[:-1] + ("A" if token[-1] != "A" else "B"), "x" * 200):
        response = with_cookie(app, forged).get("/queue")
        assert is_sent_to_sign_in(response)
        cookies = response.headers.getlist("Set-Cookie")
        assert any(c.startswith("portal_session=;") for c in cookies)  # forgotten


def test_staff_sessions_end_after_30_idle_minutes(app, client_for, desk):
    client = client_for(desk.intake)
    assert client.get("/queue").status_code == 200
    with frozen_at(utcnow() + timedelta(minutes=31)):
        response = client.get("/queue")
        assert is_sent_to_sign_in(response)
        follow = client.get(response.headers["Location"]).get_data(as_text=True)
        assert "signed out after 30 minutes without activity" in follow


def test_partner_sessions_last_longer_but_not_for_ever(client_for, desk):
    client = client_for(desk.partner_a)
    start = utcnow()
    with frozen_at(start + timedelta(minutes=45)):
        assert client.get("/referrals/").status_code == 200
    with frozen_at(start + timedelta(minutes=45 + 121)):
        assert is_sent_to_sign_in(client.get("/referrals/"))


def test_sessions_end_12_hours_after_sign_in_however_active(client_for, desk):
    client = client_for(desk.intake)
    start = utcnow()
    for minutes in range(20, 12 * 60, 20):
        with frozen_at(start + timedelta(minutes=minutes)):
            assert client.get("/queue").status_code == 200, minutes
    with frozen_at(start + timedelta(hours=12, minutes=1)):
        assert is_sent_to_sign_in(client.get("/queue"))


def test_activity_keeps_the_session_but_timeline_polling_does_not(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk)
    client = client_for(desk.intake)
    start = utcnow()
    with frozen_at(start + timedelta(minutes=20)):
        assert client.get("/queue").status_code == 200
    with frozen_at(start + timedelta(minutes=45)):
        assert client.get(f"/referrals/{reference}/timeline").status_code == 200
    with frozen_at(start + timedelta(minutes=51)):
        assert is_sent_to_sign_in(client.get("/queue"))


def test_an_htmx_request_after_expiry_is_redirected_by_htmx(client_for, desk):
    client = client_for(desk.intake)
    with frozen_at(utcnow() + timedelta(minutes=31)):
        response = client.get("/queue", headers={"HX-Request": "true"})
    assert response.status_code == 204 and "/sign-in" in response.headers["HX-Redirect"]


def test_finding_the_session_is_one_statement_and_activity_is_written_once_a_minute(
    app, client_for, desk
):
    with app.app_context():
        reference = make_referral(desk)
        engine = db.engine
    client = client_for(desk.partner_a)
    statements: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", record)
    try:
        start = utcnow()
        with frozen_at(start + timedelta(seconds=10)):
            assert client.get(f"/referrals/{reference}").status_code == 200
        within = [s for s in statements if "user_session" in s]
        statements.clear()
        with frozen_at(start + timedelta(seconds=75)):
            assert client.get(f"/referrals/{reference}").status_code == 200
        after_a_minute = [s for s in statements if "user_session" in s]
    finally:
        event.remove(engine, "before_cursor_execute", record)
    assert len(within) == 1 and within[0].lstrip().startswith("SELECT")
    assert len(after_a_minute) == 2 and after_a_minute[1].lstrip().startswith("UPDATE")


def test_throttling_never_stops_the_right_password_from_another_address(app, client, desk):
    for _ in range(20):
        assert sign_in(client, desk.partner_a, "guess").status_code in (401, 429)
    assert sign_in(client, desk.partner_a).status_code == 429  # this address must wait
    elsewhere = new_client(app)
    response = sign_in(elsewhere, desk.partner_a, environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert response.status_code == 302


def test_failures_past_the_free_ones_double_the_wait(app, client, desk):
    start = utcnow()
    with frozen_at(start):
        for _ in range(5):
            assert sign_in(client, desk.partner_a, "guess").status_code == 401
        # The sixth try is checked (the first doubling is a 1 s wait, already over
        # once a second has passed); after that each failure doubles the wait.
    waited = start
    for expected_wait in (1, 2, 4, 8):
        waited += timedelta(seconds=expected_wait)
        with frozen_at(waited - timedelta(milliseconds=500)):
            early = sign_in(client, desk.partner_a, "guess")
            assert early.status_code == 429
            assert int(early.headers["Retry-After"]) >= 1
            assert "Too many attempts" in early.get_data(as_text=True)
        with frozen_at(waited):
            assert sign_in(client, desk.partner_a, "guess").status_code == 401
    with frozen_at(waited + timedelta(seconds=16)):
        assert sign_in(client, desk.partner_a).status_code == 302
    # Refusals for waiting are audited but never counted as failures.
    assert audit_actions(app).count("sign_in.failed") == 13


def test_a_flood_on_one_account_holds_new_addresses_but_not_the_users_usual_one(app, desk):
    usual = new_client(app)
    assert sign_in(usual, desk.partner_a).status_code == 302  # the office's own address
    usual.post("/sign-out")
    app.config["SIGN_IN_ACCOUNT_HOURLY_LIMIT"] = 30
    attacker = new_client(app)
    for n in range(30):  # from 30 different addresses: no per-address wait applies
        address = f"203.0.113.{n + 1}"
        response = sign_in(attacker, desk.partner_a, "guess", environ_base={"REMOTE_ADDR": address})
        assert response.status_code == 401
    stranger = sign_in(
        new_client(app), desk.partner_a, environ_base={"REMOTE_ADDR": "198.51.100.7"}
    )
    assert stranger.status_code == 429
    assert sign_in(usual, desk.partner_a).status_code == 302


def test_hashes_are_argon2id_and_rehashed_when_parameters_change(app, client, desk):
    with app.app_context():
        old_hash = db.session.scalar(select(User).filter_by(email=desk.partner_a)).password_hash
    assert old_hash.startswith("$argon2id$")
    app.config["ARGON2_TIME_COST"] = 2
    assert sign_in(client, desk.partner_a).status_code == 302
    with app.app_context():
        new_hash = db.session.scalar(select(User).filter_by(email=desk.partner_a)).password_hash
    assert new_hash != old_hash and "t=2" in new_hash


def test_sign_in_follows_only_same_site_next_links(client, desk):
    response = sign_in(client, desk.partner_a, query_string={"next": "https://evil.example/"})
    assert response.headers["Location"] == "/referrals/"
    client.post("/sign-out")
    response = sign_in(client, desk.partner_a, query_string={"next": "/dashboard"})
    assert response.headers["Location"] == "/dashboard"


def test_pages_need_a_signed_in_user(client, desk):
    response = client.get("/queue")
    assert is_sent_to_sign_in(response)


# --- Your sessions -------------------------------------------------------------------


def test_a_user_sees_their_sessions_and_signs_out_the_others(app, client_for, desk):
    laptop = client_for(desk.partner_a)
    phone = new_client(app)
    phone_token = phone.sign_in_directly(desk.partner_a)
    page = laptop.get("/account").get_data(as_text=True)
    assert page.count("<tr") == 3 and "This device" in page  # a header row and two sessions

    assert laptop.post("/account/sessions/end-others").status_code == 302
    assert is_sent_to_sign_in(with_cookie(app, phone_token).get("/referrals/"))
    assert laptop.get("/referrals/").status_code == 200


def test_a_user_signs_out_one_other_session(app, client_for, desk):
    laptop = client_for(desk.partner_a)
    phone = new_client(app)
    phone.sign_in_directly(desk.partner_a)
    with app.app_context():
        phone_row = db.session.scalars(select(UserSession).order_by(UserSession.id.desc())).first()
    assert laptop.post(f"/account/sessions/{phone_row.id}/end").status_code == 302
    assert is_sent_to_sign_in(phone.get("/referrals/"))
    assert laptop.get("/referrals/").status_code == 200
    # Someone else's session is not yours to end.
    other = client_for(desk.partner_b)
    with app.app_context():
        laptop_row = db.session.scalars(select(UserSession).order_by(UserSession.id)).first()
    assert other.post(f"/account/sessions/{laptop_row.id}/end").status_code == 404


def test_the_jobs_process_purges_expired_sessions_and_audits_them(app, client_for, desk):
    from jobs.maintenance import purge_sessions

    client_for(desk.intake)
    client_for(desk.partner_a)
    with app.app_context(), frozen_at(utcnow() + timedelta(minutes=40)):
        purge_sessions()
        left = db.session.scalars(select(UserSession)).all()
        expired = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "session.expired")
        ).all()
    assert len(left) == 1  # the partner's session has 2 h of idle time
    assert len(expired) == 1 and expired[0].detail["reason"] == "idle"


# --- Invitations ---------------------------------------------------------------------


def invite_partner_user(client, desk, email="newbie@alpha.example"):
    response = client.post(
        f"/admin/partners/{desk.partner_a_id}",
        data={"full_name": "New Bie", "email": email},
    )
    assert response.status_code == 200
    html = response.get_data(as_text=True)
    return re.search(r'value="(http://[^"]+/invitations/[^"]+)"', html).group(1)


def test_an_invited_partner_user_sets_a_password_and_signs_in(app, client, client_for, desk):
    link = invite_partner_user(client_for(desk.success), desk)
    path = link.split("127.0.0.1:8000", 1)[1]
    page = client.get(path)
    assert page.status_code == 200 and "Choose your password" in page.get_data(as_text=True)
    response = client.post(
        path, data={"password": "a long new password", "confirm": "a long new password"}
    )
    assert response.status_code == 302 and response.headers["Location"].endswith("/referrals/")

    with app.app_context():
        user = db.session.scalar(select(User).filter_by(email="newbie@alpha.example"))
        assert user.role is Role.PARTNER and user.partner_id == desk.partner_a_id
        messages = [m for m in user_messages(user.email)]
        assert len(messages) == 1 and "/invitations/" in messages[0].body

    assert (
        sign_in(new_client(app), "newbie@alpha.example", "a long new password").status_code == 302
    )


def user_messages(email):
    from portal.models import OutboxMessage

    return db.session.scalars(select(OutboxMessage).where(OutboxMessage.recipient == email))


def test_a_used_invitation_says_so(client, client_for, desk):
    path = invite_partner_user(client_for(desk.success), desk).split(":8000", 1)[1]
    client.post(path, data={"password": "a long new password", "confirm": "a long new password"})
    client.post("/sign-out")
    response = client.get(path)
    assert response.status_code == 410
    assert "already been used" in response.get_data(as_text=True)


def test_an_expired_invitation_says_so(app, client, client_for, desk):
    path = invite_partner_user(client_for(desk.success), desk).split(":8000", 1)[1]
    with frozen_at(utcnow() + app.config["INVITATION_MAX_AGE"] + timedelta(minutes=1)):
        response = client.get(path)
    assert response.status_code == 410
    assert "has expired" in response.get_data(as_text=True)


def test_a_newer_invitation_replaces_the_older_one(app, client, client_for, desk):
    staff = client_for(desk.success)
    first = invite_partner_user(staff, desk).split(":8000", 1)[1]
    second = invite_partner_user(staff, desk).split(":8000", 1)[1]
    assert "replaced by a newer one" in client.get(first).get_data(as_text=True)
    assert client.get(second).status_code == 200
    with app.app_context():
        assert db.session.query(Invitation).count() == 2


def test_a_tampered_invitation_link_is_refused(client, client_for, desk):
    path = invite_partner_user(client_for(desk.success), desk).split(":8000", 1)[1]
    response = client.get(path[:-3] + "xyz")
    assert response.status_code == 410
    assert "not valid" in response.get_data(as_text=True)


def test_invited_staff_set_up_a_second_factor_before_anything_else(app, client, client_for, desk):
    response = client_for(desk.admin).post(
        "/admin/users",
        data={"full_name": "Nora Nurse", "email": "nora@desk.example", "role": "clinical"},
    )
    path = re.search(r'value="http://[^"]+(/invitations/[^"]+)"', response.get_data(as_text=True))
    accepted = client.post(
        path.group(1), data={"password": "a long new password", "confirm": "a long new password"}
    )
    assert accepted.headers["Location"].endswith("/sign-in/set-up-code")
    assert is_sent_to_sign_in(client.get("/queue"))  # nothing opens before the code
    with app.app_context():
        user = db.session.scalar(select(User).filter_by(email="nora@desk.example"))
        assert user.role is Role.CLINICAL and user.password_hash and not user.has_second_factor


def test_an_existing_account_cannot_be_invited_again(client_for, desk):
    response = client_for(desk.admin).post(
        "/admin/users", data={"full_name": "Dup", "email": desk.intake, "role": "intake"}
    )
    assert "already exists" in response.get_data(as_text=True)


def test_the_first_admin_is_invited_from_the_command_line(app, client):
    result = app.test_cli_runner().invoke(args=["users", "invite-admin", "boss@x.example", "B"])
    assert result.exit_code == 0, result.output
    path = result.output.strip().split(":8000", 1)[1]
    response = client.post(
        path, data={"password": "a long new password", "confirm": "a long new password"}
    )
    assert response.headers["Location"].endswith("/sign-in/set-up-code")


def test_signing_in_returns_to_the_page_asked_for_with_its_query(app, desk, client):
    from urllib.parse import parse_qs, urlsplit

    response = client.get("/dashboard?period=month&on=2026-10-01")
    assert response.status_code == 302
    asked = parse_qs(urlsplit(response.headers["Location"]).query)["next"]
    assert asked == ["/dashboard?period=month&on=2026-10-01"]
    signed_in = client.post(
        "/sign-in",
        query_string={"next": asked[0]},
        data={"email": desk.partner_a, "password": PASSWORD},
    )
    assert signed_in.headers["Location"].endswith("/dashboard?period=month&on=2026-10-01")
