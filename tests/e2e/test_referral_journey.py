"""The whole loop in a real browser: the partner's open page follows each step live."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.fixtures.browser import (
    complete_visit,
    fill_provider_and_patient,
    schedule_tomorrow,
    staff_action,
)
from tests.fixtures.desk import VALID_NPI

pytestmark = pytest.mark.e2e


def test_partner_follows_a_referral_live_from_submission_to_started_care(
    app, desk, live_server, signed_in_page
):
    partner = signed_in_page(desk.partner_a)
    partner.get_by_role("link", name="New referral").first.click()
    fill_provider_and_patient(partner)
    partner.get_by_label("Service line").select_option(label="Cardiac rehabilitation")
    # htmx swaps in the service line's criteria and required items.
    expect(partner.get_by_text("Cardiac event in the last 12 months")).to_be_visible()
    expect(partner.get_by_label("Echocardiogram report")).to_be_visible()
    partner.get_by_label("Medication list").fill("Aspirin 81 mg")
    partner.get_by_label("Echocardiogram report").set_input_files(
        files=[{"name": "echo.pdf", "mimeType": "application/pdf", "buffer": b"%PDF-1.4\n%%EOF"}]
    )
    partner.get_by_label("Reason for referral").fill("Cardiac rehab after CABG")
    partner.get_by_label("The patient consented to be contacted").check()
    partner.get_by_role("button", name="Send referral").click()

    expect(partner.get_by_role("heading", name="Referral received")).to_be_visible()
    reference = partner.locator("#reference").inner_text()
    assert re.fullmatch(r"R-[0-9A-Z]{4}-[0-9A-Z]{4}", reference)
    partner.get_by_role("link", name="referral's page").click()
    expect(partner.locator("#current-status")).to_have_text("Submitted")
    # A marker that a full page reload would wipe: the timeline must update in place.
    partner.evaluate("window.stillTheSamePage = true")

    intake = signed_in_page(desk.intake)
    intake.get_by_label("Reference").fill(reference)
    intake.get_by_role("button", name="Apply").click()
    intake.get_by_role("link", name=reference).click()
    staff_action(intake, live_server, reference, "Record first touch")
    expect(partner.locator("#current-status")).to_have_text("In review")
    expect(partner.get_by_text("Intake has picked up the referral")).to_be_visible()

    clinical = signed_in_page(desk.clinical)
    staff_action(
        clinical, live_server, reference, "Accept", {"Assigned provider": "Dr. Helen Park"}
    )
    expect(partner.get_by_text("Accepted and assigned to Dr. Helen Park")).to_be_visible()

    staff_action(
        intake,
        live_server,
        reference,
        "Log a contact attempt",
        {},
    )
    expect(partner.get_by_text("Patient reached")).to_be_visible()

    schedule_tomorrow(intake, live_server, reference)
    expect(partner.locator("#current-status")).to_have_text("Scheduled")

    complete_visit(app, intake, live_server, reference)
    expect(partner.locator("#current-status")).to_have_text("Completed")
    expect(partner.locator("#current-outcome")).to_have_text("Started care")
    expect(partner.get_by_text("the patient has started care")).to_be_visible()

    assert partner.evaluate("window.stillTheSamePage") is True
    for page in (partner, intake, clinical):
        assert page.js_errors == [], page.js_errors


def test_the_referral_form_works_by_keyboard_alone(app, desk, live_server, signed_in_page):
    page = signed_in_page(desk.partner_a)
    page.goto(f"{live_server}/referrals/new")
    keyboard = page.keyboard

    def tab_to(element_id: str) -> None:
        for _ in range(40):
            keyboard.press("Tab")
            if page.evaluate("document.activeElement.id") == element_id:
                return
        raise AssertionError(f"Tab never reached #{element_id}")

    tab_to("referring_provider_name")
    keyboard.type("Dr. Ruth Adler")
    tab_to("referring_provider_npi")
    keyboard.type(VALID_NPI)
    tab_to("patient_first_name")
    keyboard.type("Zephyrine")
    tab_to("patient_last_name")
    keyboard.type("Quillfeather")
    tab_to("patient_date_of_birth")
    keyboard.type("03141961")
    tab_to("patient_phone")
    keyboard.type("2025550143")
    tab_to("preferred_contact-0")
    keyboard.press("Space")
    tab_to("service_line")
    keyboard.press("ArrowDown")
    keyboard.press("ArrowDown")  # Sleep medicine: nothing else required
    tab_to("reason")
    keyboard.type("Snoring and daytime sleepiness")
    tab_to("consent_to_contact")
    keyboard.press("Space")
    keyboard.press("Tab")
    keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent").strip() == "Send referral"
    keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Referral received")).to_be_visible()


def test_error_summary_links_move_focus_to_the_bad_field(desk, live_server, signed_in_page):
    page = signed_in_page(desk.partner_a)
    page.goto(f"{live_server}/referrals/new")
    page.get_by_role("button", name="Send referral").click()
    summary = page.locator(".error-summary")
    expect(summary).to_be_focused()
    summary.get_by_role("link", name="Enter the 10-digit NPI").click()
    expect(page.locator("#referring_provider_npi")).to_be_focused()
