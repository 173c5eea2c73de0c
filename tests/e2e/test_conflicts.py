"""Two members of staff on one referral, in real browsers: the second sees what changed,
presses again, and the history is one consistent story. And the page passes axe."""

from __future__ import annotations

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from portal.models import Status
from tests.fixtures.desk import make_referral

pytestmark = pytest.mark.e2e


def open_action(page, summary):
    page.locator("summary", has_text=summary).click()
    return page.locator("details[open] form")


def test_the_second_of_two_staff_sees_the_change_and_acts_again(
    app, desk, live_server, signed_in_page
):
    with app.app_context():
        reference = make_referral(desk, Status.IN_REVIEW)
    # Intake and a clinician: the same TOTP code cannot sign one person in twice.
    first, second = signed_in_page(desk.intake), signed_in_page(desk.clinical)
    first.goto(f"{live_server}/referrals/{reference}")
    second.goto(f"{live_server}/referrals/{reference}")

    form = open_action(first, "Request missing information")
    form.get_by_label("Other questions").fill("Current weight")
    form.get_by_role("button", name="Request missing information").click()
    expect(first.locator(".notice-success")).to_be_visible()

    form = open_action(second, "Add a staff note")
    form.get_by_label("Staff note").fill("Spoke to the GP's office")
    form.get_by_role("button", name="Add a staff note").click()
    problem = second.locator("#action-message")
    expect(problem).to_contain_text("Your change was not saved")
    expect(problem).to_contain_text("More information needed")
    kept = second.locator("details[open] form")
    expect(kept.get_by_label("Staff note")).to_have_value("Spoke to the GP's office")

    kept.get_by_role("button", name="Add a staff note").click()
    expect(second.locator(".notice-success")).to_contain_text("Note added.")
    timeline = second.locator("#timeline")
    expect(timeline).to_contain_text("More information needed")
    expect(timeline).to_contain_text("Staff note")


def test_the_staff_referral_page_passes_axe(app, desk, live_server, signed_in_page):
    with app.app_context():
        reference = make_referral(desk, Status.IN_REVIEW)
    page = signed_in_page(desk.intake)
    page.goto(f"{live_server}/referrals/{reference}")
    for summary in page.locator("details.action summary").all():
        summary.click()  # every action form open, so axe checks them all
    results = Axe().run(page)
    assert results.violations_count == 0, results.generate_report()
