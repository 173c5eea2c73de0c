"""The referring office rates the referral process in a real browser: from the outcome
email's link, then changed with one click on the referral's page. Both pass axe."""

from __future__ import annotations

import re

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect
from sqlalchemy import select

from portal.extensions import db
from portal.models import OutboxMessage, ProcessRating, Status
from tests.fixtures.desk import make_referral

pytestmark = pytest.mark.e2e


def test_the_office_rates_from_the_email_then_changes_it_on_the_referral_page(
    app, desk, live_server, signed_in_page
):
    with app.app_context():
        reference = make_referral(desk, Status.REDIRECTED)
        body = db.session.scalars(
            select(OutboxMessage.body)
            .where(OutboxMessage.purpose == "partner_outcome")
            .order_by(OutboxMessage.id.desc())
        ).first()
    link = re.search(r"^4: (\S+)$", body, re.MULTILINE).group(1)
    assert link.startswith(live_server)

    page = signed_in_page(desk.partner_a)
    page.goto(link)
    expect(page.get_by_label("4: very good")).to_be_checked()
    with app.app_context():
        assert db.session.scalar(select(ProcessRating)) is None  # opening it recorded nothing
    assert Axe().run(page).violations_count == 0
    page.get_by_label("Comment (optional)").fill("Clear updates throughout.")
    page.get_by_role("button", name="Send my rating").click()
    expect(page.locator(".notice-success")).to_contain_text("your rating of the referral")
    assert page.url == f"{live_server}/referrals/{reference}"
    panel = page.locator("#rating")
    expect(panel).to_contain_text("Your office rated it 4 of 5")
    expect(panel.get_by_label("Comment (optional)")).to_have_value("Clear updates throughout.")
    results = Axe().run(page)
    assert results.violations_count == 0, results.generate_report()

    panel.get_by_role("button", name="2: fair").click()
    expect(page.locator(".notice-success")).to_contain_text("was changed")
    expect(page.locator("#rating")).to_contain_text("Your office rated it 2 of 5")
    with app.app_context():
        (rating,) = db.session.scalars(select(ProcessRating)).all()
        assert (rating.score, rating.comment) == (2, "Clear updates throughout.")
    assert page.js_errors == []
