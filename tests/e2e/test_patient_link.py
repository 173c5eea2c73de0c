"""A patient on a phone confirms their next step; the partner's open page shows it."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from portal.models import Status
from tests.fixtures.desk import make_referral

pytestmark = pytest.mark.e2e

PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True}


def test_patient_picks_a_slot_on_a_phone_and_the_partner_sees_it_live(
    app, desk, browser, live_server, signed_in_page
):
    with app.app_context():
        reference = make_referral(desk, Status.ACCEPTED)

    partner = signed_in_page(desk.partner_a)
    partner.goto(f"{live_server}/referrals/{reference}")
    expect(partner.locator("#current-status")).to_have_text("Accepted")

    intake = signed_in_page(desk.intake)
    intake.goto(f"{live_server}/referrals/{reference}")
    intake.locator("summary", has_text="Send the patient their next step").click()
    form = intake.locator("details[open] form")
    form.get_by_label("Email").check()
    form.get_by_label("First time offered: date").fill("2099-05-04")
    form.get_by_label("First time offered: time").fill("09:30")
    form.get_by_label("Second time: date").fill("2099-05-05")
    form.get_by_label("Second time: time").fill("14:00")
    form.get_by_role("button", name="Send the patient their next step").click()
    expect(intake.locator(".notice-success")).to_have_text("Link sent to the patient.")

    # The newcomer's way in: the development outbox shows the message with its link.
    intake.goto(f"{live_server}/dev/outbox")
    patient_link = intake.locator("article.message").first.locator("a[href*='/p/']")
    url = patient_link.get_attribute("href")

    context = browser.new_context(**PHONE, java_script_enabled=False)
    patient = context.new_page()
    patient.goto(url)
    expect(patient.get_by_role("heading", name="Confirm it is you")).to_be_visible()
    assert "Quillfeather" not in patient.content()
    patient.get_by_label("Day").fill("14")
    patient.get_by_label("Month").fill("3")
    patient.get_by_label("Year").fill("1961")
    patient.get_by_role("button", name="Continue").click()

    expect(patient.get_by_role("heading", name="Choose your next step")).to_be_visible()
    patient.get_by_label("Mon, May 4, 2099, 9:30 AM EDT, video visit").check()
    patient.get_by_label("Text message").check()
    # Everything fits the phone's width: no sideways scrolling.
    assert patient.evaluate("document.documentElement.scrollWidth") <= 390
    patient.get_by_role("button", name="Send my answer").click()
    expect(patient.get_by_role("heading", name="You are booked")).to_be_visible()
    expect(patient.get_by_text("Before your visit")).to_be_visible()
    context.close()

    expect(partner.locator("#current-status")).to_have_text("Scheduled")
    expect(partner.get_by_text("Patient confirmed next step")).to_be_visible()
