"""In a real browser: a member of staff sets up their authenticator app, signs out,
signs in with a code, is refused a reused one, then signs in with a recovery code; and
an admin ends a user's session, which throws that user out."""

from __future__ import annotations

from datetime import timedelta

import pyotp
import pytest
from playwright.sync_api import expect

from portal.clock import utcnow
from portal.extensions import db
from tests.fixtures.desk import PASSWORD, user

pytestmark = pytest.mark.e2e


def password_step(page, base, email):
    page.goto(f"{base}/sign-in")
    page.get_by_label("Email address").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()


def sign_out(page):
    page.get_by_role("button", name="Sign out").click()
    expect(page.locator(".notice-info")).to_contain_text("You are signed out.")


def test_staff_enrol_then_sign_in_with_a_code_and_with_a_recovery_code(
    app, desk, browser, live_server
):
    with app.app_context():
        intake = user(desk.intake)
        intake.totp_secret = intake.totp_enabled_at = None  # as if newly invited
        db.session.commit()
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(10_000)
    errors = []
    page.on("pageerror", lambda error: errors.append(str(error)))

    password_step(page, live_server, desk.intake)
    expect(page.get_by_role("heading", name="Set up your second factor")).to_be_visible()
    expect(page.locator(".qr-code svg")).to_be_visible()
    secret = page.locator("#totp-secret").inner_text().strip()
    totp = pyotp.TOTP(secret)
    enrolment_code = totp.now()
    page.get_by_label("Code from your authenticator app").fill(enrolment_code)
    page.get_by_role("button", name="Turn on the second factor").click()
    expect(page.get_by_role("heading", name="Save your recovery codes")).to_be_visible()
    recovery_codes = page.locator("#recovery-codes code").all_inner_texts()
    assert len(recovery_codes) == 10
    page.get_by_role("link", name="I have saved them: continue").click()
    expect(page).to_have_url(f"{live_server}/queue")
    sign_out(page)

    # A code already used is refused, even within its 30 seconds.
    password_step(page, live_server, desk.intake)
    expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
    page.get_by_label("Code").fill(enrolment_code)
    page.get_by_role("button", name="Continue").click()
    expect(page.locator(".error-summary")).to_contain_text("already used")
    # The app's next code is accepted (one step of clock drift is allowed).
    page.get_by_label("Code").fill(totp.at(utcnow() + timedelta(seconds=30)))
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(f"{live_server}/queue")
    sign_out(page)

    password_step(page, live_server, desk.intake)
    page.get_by_label("Code").fill(recovery_codes[3])
    page.get_by_role("button", name="Continue").click()
    expect(page).to_have_url(f"{live_server}/queue")
    expect(page.locator(".notice-info")).to_contain_text("9 left")
    sign_out(page)

    # Each recovery code works once.
    password_step(page, live_server, desk.intake)
    page.get_by_label("Code").fill(recovery_codes[3])
    page.get_by_role("button", name="Continue").click()
    expect(page.locator(".error-summary")).to_be_visible()
    assert errors == []
    context.close()


def test_an_admin_ends_a_users_session_and_the_user_is_thrown_out(
    app, desk, live_server, signed_in_page
):
    partner = signed_in_page(desk.partner_a)
    partner.goto(f"{live_server}/referrals/")
    expect(partner.get_by_role("heading", name="Referrals from Alpha Primary Care")).to_be_visible()

    admin = signed_in_page(desk.admin)
    with app.app_context():
        partner_id = user(desk.partner_a).id
    admin.goto(f"{live_server}/admin/users/{partner_id}")
    expect(admin.locator("table.sessions tbody tr")).to_have_count(1)
    admin.get_by_role("button", name="Sign out everywhere").click()
    expect(admin.locator(".notice-success")).to_contain_text("signed out everywhere")

    partner.reload()
    expect(partner).to_have_url(f"{live_server}/sign-in?next=/referrals/")
    expect(partner.get_by_role("heading", name="Sign in")).to_be_visible()
