"""A referring office interrupted mid-form saves it, and finishes it later from Drafts."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from portal.extensions import db
from portal.models import Referral, ReferralDraft
from tests.fixtures.desk import PDF, VALID_NPI

pytestmark = pytest.mark.e2e


def test_partner_saves_half_a_referral_and_sends_it_later(app, desk, live_server, signed_in_page):
    page = signed_in_page(desk.partner_a)
    page.get_by_role("link", name="New referral").first.click()
    page.get_by_label("First name").fill("Zephyrine")
    page.get_by_label("Last name").fill("Quillfeather")
    page.get_by_label("Service line").select_option(label="Cardiac rehabilitation")
    expect(page.get_by_label("Echocardiogram report")).to_be_visible()
    page.get_by_label("Echocardiogram report").set_input_files(
        files=[{"name": "echo.pdf", "mimeType": "application/pdf", "buffer": PDF}]
    )
    page.get_by_label("Reason for referral").fill("Cardiac rehab after CABG")
    # The phone rings: keep what is typed so far.
    page.get_by_role("button", name="Save for later").click()

    expect(page.get_by_text("Draft saved")).to_be_visible()
    page.get_by_role("link", name="My referrals").click()
    page.get_by_role("main").get_by_role("link", name="Drafts").click()
    row = page.get_by_role("row", name="Zephyrine Quillfeather")
    expect(row).to_contain_text("Cardiac rehabilitation")
    expect(row).to_contain_text("Office")  # who saved it
    row.get_by_role("link", name="Continue").click()

    expect(page.get_by_label("First name")).to_have_value("Zephyrine")
    expect(page.get_by_label("Reason for referral")).to_have_value("Cardiac rehab after CABG")
    expect(page.get_by_label("Medication list")).to_be_visible()
    expect(page.get_by_label("Remove echo.pdf")).not_to_be_checked()
    page.get_by_label("Referring provider's name").fill("Dr. Ruth Adler")
    page.get_by_label("Referring provider's NPI").fill(VALID_NPI)
    page.get_by_label("Date of birth").fill("1961-03-14")
    page.get_by_label("Phone", exact=True).fill("202 555 0143")
    page.get_by_label("Phone call").check()
    page.get_by_label("Medication list").fill("Aspirin 81 mg")
    page.get_by_label("The patient consented to be contacted").check()
    page.get_by_role("button", name="Send referral").click()

    expect(page.get_by_role("heading", name="Referral received")).to_be_visible()
    reference = page.locator("#reference").inner_text()
    with app.app_context():
        referral = db.session.scalar(select(Referral).where(Referral.reference == reference))
        assert [d.filename for d in referral.documents] == ["echo.pdf"]
        assert referral.missing_items == []  # the draft's echo report provided its item
        assert db.session.scalars(select(ReferralDraft)).all() == []
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Drafts").click()
    expect(page.get_by_text("No drafts.")).to_be_visible()
    assert page.js_errors == [], page.js_errors
