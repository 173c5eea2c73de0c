"""Errors in a real browser: a page with its reference, and a failed live update shown
where the user is looking rather than swapped into the page."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from tests.fixtures.desk import make_referral

pytestmark = pytest.mark.e2e


def test_a_missing_page_shows_the_reference_its_response_carried(desk, live_server, signed_in_page):
    page = signed_in_page(desk.intake)
    response = page.goto(f"{live_server}/referrals/R-0000-0000")
    assert response.status == 404
    reference = response.headers["x-request-id"]
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    expect(page.locator(".error-reference")).to_contain_text(reference)
    # The navigation is still there: the user can carry on.
    expect(page.get_by_role("link", name="Queue")).to_be_visible()


def test_a_failed_timeline_update_is_announced_and_the_timeline_kept(
    app, desk, live_server, signed_in_page
):
    with app.app_context():
        reference = make_referral(desk)
    page = signed_in_page(desk.intake)
    page.goto(f"{live_server}/referrals/{reference}")
    timeline = page.locator("#timeline")
    expect(timeline).to_contain_text("Submitted")
    # The next poll asks for a referral that does not exist: a real 404 from the server.
    page.route(
        "**/timeline",
        lambda route: route.continue_(url=f"{live_server}/referrals/R-0000-0000/timeline"),
    )
    problem = page.locator("#request-problem [role=alert]")
    expect(problem).to_contain_text("Page not found", timeout=10_000)
    expect(problem).to_contain_text("Reference:")
    expect(timeline).to_contain_text("Submitted")
    # When updates work again, the message goes away.
    page.unroute("**/timeline")
    expect(page.locator("#request-problem")).to_be_empty(timeout=10_000)
