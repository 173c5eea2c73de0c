"""Back after sending a referral, in a real browser: the form says it was sent."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import Referral
from tests.fixtures.browser import fill_provider_and_patient

pytestmark = pytest.mark.e2e


def fill_referral(page) -> None:
    fill_provider_and_patient(page)
    page.get_by_label("Service line").select_option(label="Sleep medicine")
    page.get_by_label("Reason for referral").fill("Snoring and daytime sleepiness")
    page.get_by_label("The patient consented to be contacted").check()


def referral_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(Referral.id)))


def test_back_after_sending_shows_already_submitted_and_sends_nothing_twice(
    app, desk, live_server, signed_in_page
):
    partner = signed_in_page(desk.partner_a)
    partner.get_by_role("link", name="New referral").first.click()
    expect(partner).to_have_url(re.compile(r"/referrals/new\?form=[\w-]{32}$"))
    fill_referral(partner)
    partner.get_by_role("button", name="Send referral").click()
    expect(partner.get_by_role("heading", name="Referral received")).to_be_visible()
    reference = partner.locator("#reference").inner_text()

    partner.go_back()
    expect(
        partner.get_by_role("heading", name="This referral was already submitted")
    ).to_be_visible()
    expect(partner.locator("#reference")).to_have_text(reference)
    expect(partner.get_by_label("First name")).to_have_count(0)
    partner.get_by_role("link", name=f"open referral {reference}").click()
    expect(partner.get_by_role("heading", name=f"Referral {reference}")).to_be_visible()
    assert referral_count(app) == 1

    # A new form for the same patient warns before anything is sent; "Submit anyway"
    # sends it, marked.
    partner.get_by_role("link", name="New referral").first.click()
    fill_referral(partner)
    partner.get_by_role("button", name="Send referral").click()
    warning = partner.locator("#possible-duplicate")
    expect(warning).to_contain_text("This patient may already have been referred")
    expect(warning.get_by_role("link", name=f"referral {reference}")).to_be_visible()
    assert referral_count(app) == 1
    partner.get_by_label("The patient consented to be contacted").check()
    partner.get_by_role("button", name="Submit anyway").click()
    expect(partner.get_by_role("heading", name="Referral received")).to_be_visible()
    assert referral_count(app) == 2
    # The browser logs the warning page's 409 as a failed load; nothing else may fail.
    errors = [e for e in partner.js_errors if "status of 409" not in e]
    assert errors == [], errors
