"""Forgotten passwords, changing a password, and what makes a password acceptable."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

from sqlalchemy import select

from portal.accounts import services as account_services
from portal.clock import frozen_at, utcnow
from portal.extensions import db
from portal.models import AuditEntry, OutboxMessage, PasswordReset
from tests.conftest import PortalClient
from tests.fixtures.desk import PASSWORD

NEW_PASSWORD = "plum orchard lantern 48"


def ask_for_reset(client, email, **kwargs):
    return client.post("/password/forgot", data={"email": email}, **kwargs)


def mails_to(app, email) -> list[OutboxMessage]:
    with app.app_context():
        rows = db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.recipient == email).order_by(OutboxMessage.id)
        ).all()
        db.session.expunge_all()
        return rows


def reset_path(message: OutboxMessage) -> str:
    return re.search(r"http://[^/]+(/password/reset\?token=\S+)", message.body).group(1)


def choose(client, password=NEW_PASSWORD):
    return client.post("/password/reset", data={"password": password, "confirm": password})


def without_csrf_token(response) -> str:
    """The page without its CSRF token, which carries the second it was signed in."""
    return re.sub(r'"X-CSRFToken": "[^"]+"', "", response.get_data(as_text=True))


def test_the_answer_is_the_same_whether_or_not_the_account_exists(app, client, desk):
    known = ask_for_reset(client, desk.partner_a)
    unknown = ask_for_reset(client, "nobody@alpha.example")
    assert known.status_code == unknown.status_code == 200
    assert without_csrf_token(known) == without_csrf_token(unknown)
    assert len(mails_to(app, desk.partner_a)) == 1
    assert mails_to(app, "nobody@alpha.example") == []


def test_a_reset_link_works_once_ends_every_session_and_sends_a_notice(
    app, client, client_for, desk
):
    signed_in_elsewhere = client_for(desk.partner_a)
    ask_for_reset(client, desk.partner_a)
    (mail,) = mails_to(app, desk.partner_a)
    assert "expires in 30 minutes" in mail.body

    opened = client.get(reset_path(mail))
    # The token leaves the address bar at once.
    assert opened.status_code == 302 and opened.headers["Location"] == "/password/reset"
    assert "Choose a new password" in client.get("/password/reset").get_data(as_text=True)
    done = choose(client)
    assert done.status_code == 302 and done.headers["Location"].endswith("/sign-in")

    assert signed_in_elsewhere.get("/referrals/").status_code == 302
    notice = mails_to(app, desk.partner_a)[-1]
    assert notice.subject == "Your referral portal password was changed"
    assert (
        client.post(
            "/sign-in", data={"email": desk.partner_a, "password": NEW_PASSWORD}
        ).status_code
        == 302
    )
    # Used once: the same link is refused now.
    client.post("/sign-out")
    client.get(reset_path(mail))
    again = client.get("/password/reset")
    assert again.status_code == 410 and "already used" in again.get_data(as_text=True)
    with app.app_context():
        logged = set(db.session.scalars(select(AuditEntry.action)))
    assert {"password.reset_requested", "password.reset_completed", "password.changed"} <= logged


def test_a_reset_link_expires_after_30_minutes(app, client, desk):
    ask_for_reset(client, desk.partner_a)
    (mail,) = mails_to(app, desk.partner_a)
    with frozen_at(utcnow() + timedelta(minutes=31)):
        client.get(reset_path(mail))
        response = client.get("/password/reset")
    assert response.status_code == 410 and "expired" in response.get_data(as_text=True)


def test_a_newer_link_revokes_the_older_one(app, client, desk):
    ask_for_reset(client, desk.partner_a)
    ask_for_reset(client, desk.partner_a)
    first, second = mails_to(app, desk.partner_a)
    client.get(reset_path(first))
    refused = client.get("/password/reset")
    assert refused.status_code == 410 and "newer link" in refused.get_data(as_text=True)
    client.get(reset_path(second))
    assert choose(client).status_code == 302


def test_a_tampered_link_is_refused(app, client, desk):
    ask_for_reset(client, desk.partner_a)
    (mail,) = mails_to(app, desk.partner_a)
    client.get(reset_path(mail)[:-4] + "AAAA")
    assert client.get("/password/reset").status_code == 410
    with app.app_context():
        assert db.session.scalar(select(PasswordReset.used_at)) is None


def test_reset_requests_are_throttled_per_email_and_per_address(app, client, desk):
    for _ in range(5):
        assert ask_for_reset(client, desk.partner_a).status_code == 200
    assert len(mails_to(app, desk.partner_a)) == 3  # the fourth and later send nothing
    for n in range(5):
        ask_for_reset(client, f"someone{n}@alpha.example")
    # Ten requests from one address in the hour: the eleventh is refused outright.
    response = ask_for_reset(client, desk.partner_b)
    assert response.status_code == 429
    other_address = ask_for_reset(client, desk.partner_b, environ_base={"REMOTE_ADDR": "10.1.1.1"})
    assert other_address.status_code == 200 and len(mails_to(app, desk.partner_b)) == 1


def test_a_disabled_account_gets_no_reset_and_cannot_use_an_old_link(app, client, client_for, desk):
    ask_for_reset(client, desk.partner_a)
    (mail,) = mails_to(app, desk.partner_a)
    with app.app_context():
        from tests.fixtures.desk import user

        user_id = user(desk.partner_a).id
    client_for(desk.admin).post(f"/admin/users/{user_id}/disable")
    ask_for_reset(client, desk.partner_a)
    assert len(mails_to(app, desk.partner_a)) == 1
    client.get(reset_path(mail))
    assert client.get("/password/reset").status_code == 410


def test_new_passwords_must_be_long_uncommon_and_not_the_email(app, client, desk):
    ask_for_reset(client, desk.partner_a)
    (mail,) = mails_to(app, desk.partner_a)
    client.get(reset_path(mail))
    refusals = {
        "short pass": "Use at least 12 characters",
        "password1234": "too easy to guess",
        "qwertyuiop123": "too easy to guess",
        desk.partner_a: "cannot be your email address",
        "office@alpha": "cannot be your email address",
    }
    for password, message in refusals.items():
        response = choose(client, password)
        assert response.status_code == 422, password
        assert message in response.get_data(as_text=True), password
    mismatch = client.post(
        "/password/reset", data={"password": NEW_PASSWORD, "confirm": NEW_PASSWORD + "x"}
    )
    assert "do not match" in mismatch.get_data(as_text=True)
    # Any characters at all, no composition rules: a long phrase is fine.
    assert choose(client, "über café niño ☕ résumé").status_code == 302


def test_changing_your_password_needs_the_current_one_and_signs_out_other_devices(
    app, client_for, desk
):
    laptop = client_for(desk.partner_a)
    phone = client_for(desk.partner_a)
    wrong = laptop.post(
        "/account/password",
        data={"current_password": "nope", "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
    )
    assert wrong.status_code == 422 and "current password is not right" in wrong.get_data(
        as_text=True
    )
    done = laptop.post(
        "/account/password",
        data={"current_password": PASSWORD, "password": NEW_PASSWORD, "confirm": NEW_PASSWORD},
    )
    assert done.status_code == 302
    assert laptop.get("/referrals/").status_code == 200  # this browser carries on
    assert phone.get("/referrals/").status_code == 302  # every other one is out
    assert mails_to(app, desk.partner_a)[-1].subject == "Your referral portal password was changed"


def test_someone_elses_requests_do_not_use_up_yours(app, client, desk):
    for _ in range(4):
        ask_for_reset(client, desk.partner_a, environ_base={"REMOTE_ADDR": "203.0.113.9"})
    assert len(mails_to(app, desk.partner_a)) == 3
    ask_for_reset(client, desk.partner_a, environ_base={"REMOTE_ADDR": "10.0.0.5"})
    assert len(mails_to(app, desk.partner_a)) == 4  # the office's own request still sends


def test_control_characters_in_an_email_are_a_form_error(client, desk):
    for path in ("/sign-in", "/password/forgot"):
        response = client.post(path, data={"email": "office\x00@alpha.example", "password": "x"})
        assert response.status_code in (401, 422), path
    long_dotted = "İ" * 254
    assert client.post("/sign-in", data={"email": long_dotted, "password": "x"}).status_code == 401


def test_a_sign_in_that_checked_the_old_password_as_it_changed_is_signed_out(
    app, client_for, desk, monkeypatch
):
    """An attacker with the old password signs in over and over; the owner changes it.
    The sign-in whose check passed just before the change commits makes its session
    after the change ended every session: it must not work."""
    new = "a different long passphrase"
    real = account_services.verify_password
    changed = []

    def verify(stored_hash, password):
        checked = real(stored_hash, password)
        if not changed:  # the old password has just been accepted; the owner acts now
            changed.append(None)

            def change() -> None:  # in the owner's own requests (and thread)
                owner = client_for(desk.partner_a)
                changed[0] = owner.post(
                    "/account/password",
                    data={"current_password": PASSWORD, "password": new, "confirm": new},
                ).status_code

            elsewhere = threading.Thread(target=change)
            elsewhere.start()
            elsewhere.join(10)
        return checked

    monkeypatch.setattr(account_services, "verify_password", verify)
    app.test_client_class = PortalClient
    attacker = app.test_client()
    signed_in = attacker.post("/sign-in", data={"email": desk.partner_a, "password": PASSWORD})
    assert changed == [302] and signed_in.status_code == 302
    refused = attacker.get("/referrals/")
    assert refused.status_code == 302 and "/sign-in" in refused.headers["Location"]
    # The owner's new session, made after the change, works.
    monkeypatch.undo()
    owner = app.test_client()
    again = owner.post("/sign-in", data={"email": desk.partner_a, "password": new})
    assert again.status_code == 302
    assert owner.get("/referrals/").status_code == 200
