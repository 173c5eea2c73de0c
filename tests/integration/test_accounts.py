"""Signing in and out, throttling, argon2 rehashing, invitations and idle sessions."""

from __future__ import annotations

import re
from datetime import timedelta

from sqlalchemy import select

from portal.accounts.services import GENERIC_SIGN_IN_ERROR, THROTTLED_SIGN_IN_ERROR
from portal.clock import frozen_at, utcnow
from portal.extensions import db
from portal.models import AuditEntry, Invitation, Role, User
from tests.fixtures.desk import PASSWORD


def sign_in(client, email, password=PASSWORD, **kwargs):
    return client.post("/sign-in", data={"email": email, "password": password}, **kwargs)


def audit_actions(app) -> list[str]:
    with app.app_context():
        return [e.action for e in db.session.scalars(select(AuditEntry).order_by(AuditEntry.id))]


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


def test_successful_sign_in_is_audited_and_stamps_the_account(app, client, desk):
    assert sign_in(client, desk.intake).status_code == 302
    assert audit_actions(app) == ["sign_in.succeeded"]
    with app.app_context():
        assert db.session.scalar(select(User).filter_by(email=desk.intake)).last_sign_in_at


def test_repeated_failures_for_an_account_are_throttled(app, client, desk):
    for _ in range(app.config["LOGIN_MAX_FAILURES_PER_ACCOUNT"]):
        sign_in(client, desk.intake, "guess")
    # Even the right password is refused while throttled, with a message that says so.
    response = sign_in(client, desk.intake)
    assert response.status_code == 401
    assert THROTTLED_SIGN_IN_ERROR in response.get_data(as_text=True)
    # Another account from the same address is not affected yet.
    assert sign_in(client, desk.clinical).status_code == 302


def test_throttling_ends_after_the_window(app, client, desk):
    with frozen_at(utcnow() - timedelta(minutes=16)):
        for _ in range(app.config["LOGIN_MAX_FAILURES_PER_ACCOUNT"]):
            sign_in(client, desk.intake, "guess")
    assert sign_in(client, desk.intake).status_code == 302


def test_repeated_failures_from_one_address_are_throttled(app, client, desk):
    app.config["LOGIN_MAX_FAILURES_PER_ADDRESS"] = 3
    for index in range(3):
        sign_in(client, f"spray{index}@desk.example", "guess")
    response = sign_in(client, desk.intake)
    assert response.status_code == 401
    assert THROTTLED_SIGN_IN_ERROR in response.get_data(as_text=True)
    other_address = sign_in(client, desk.intake, environ_base={"REMOTE_ADDR": "10.9.9.9"})
    assert other_address.status_code == 302


def test_hashes_are_argon2id_and_rehashed_when_parameters_change(app, client, desk):
    with app.app_context():
        old_hash = db.session.scalar(select(User).filter_by(email=desk.intake)).password_hash
    assert old_hash.startswith("$argon2id$")
    app.config["ARGON2_TIME_COST"] = 2
    assert sign_in(client, desk.intake).status_code == 302
    with app.app_context():
        new_hash = db.session.scalar(select(User).filter_by(email=desk.intake)).password_hash
    assert new_hash != old_hash and "t=2" in new_hash


def test_sign_in_follows_only_same_site_next_links(client, desk):
    response = sign_in(client, desk.intake, query_string={"next": "https://evil.example/"})
    assert response.headers["Location"] == "/queue"
    client.post("/sign-out")
    response = sign_in(client, desk.intake, query_string={"next": "/admin/partners"})
    assert response.headers["Location"] == "/admin/partners"


def test_pages_need_a_signed_in_user(client, desk):
    response = client.get("/queue")
    assert response.status_code == 302 and "/sign-in" in response.headers["Location"]


def test_sign_out_ends_the_session(client_for, desk):
    client = client_for(desk.intake)
    assert client.post("/sign-out").status_code == 302
    assert client.get("/queue").status_code == 302


def test_staff_sessions_end_after_30_idle_minutes(client_for, desk):
    client = client_for(desk.intake)
    assert client.get("/queue").status_code == 200
    with frozen_at(utcnow() + timedelta(minutes=31)):
        response = client.get("/queue")
    assert response.status_code == 302 and "/sign-in" in response.headers["Location"]
    assert client.get("/queue").status_code == 302  # really signed out


def test_staff_activity_keeps_the_session_but_timeline_polling_does_not(app, client_for, desk):
    from tests.fixtures.desk import make_referral

    with app.app_context():
        reference = make_referral(desk)
    client = client_for(desk.intake)
    start = utcnow()
    with frozen_at(start + timedelta(minutes=20)):
        assert client.get("/queue").status_code == 200
    with frozen_at(start + timedelta(minutes=45)):
        assert client.get(f"/referrals/{reference}/timeline").status_code == 200
    with frozen_at(start + timedelta(minutes=51)):
        assert client.get("/queue").status_code == 302


def test_partner_sessions_are_not_ended_by_the_staff_idle_rule(client_for, desk):
    client = client_for(desk.partner_a)
    with frozen_at(utcnow() + timedelta(minutes=45)):
        assert client.get("/referrals/").status_code == 200


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

    fresh = type(client)(app, app.response_class, use_cookies=True)
    assert sign_in(fresh, "newbie@alpha.example", "a long new password").status_code == 302


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


def test_passwords_must_be_long_and_confirmed(client, client_for, desk):
    path = invite_partner_user(client_for(desk.success), desk).split(":8000", 1)[1]
    short = client.post(path, data={"password": "short", "confirm": "short"})
    assert "Use at least 12 characters" in short.get_data(as_text=True)
    mismatch = client.post(path, data={"password": "a long new password", "confirm": "another"})
    assert "do not match" in mismatch.get_data(as_text=True)


def test_admin_invites_staff_with_a_role(app, client_for, desk):
    response = client_for(desk.admin).post(
        "/admin/users",
        data={"full_name": "Nora Nurse", "email": "nora@desk.example", "role": "clinical"},
    )
    assert response.status_code == 200
    assert "/invitations/" in response.get_data(as_text=True)
    with app.app_context():
        user = db.session.scalar(select(User).filter_by(email="nora@desk.example"))
        assert user.role is Role.CLINICAL and user.partner_id is None and not user.is_active


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
    assert response.headers["Location"].endswith("/admin/partners")
