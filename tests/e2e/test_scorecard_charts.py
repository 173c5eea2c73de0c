"""Scorecard charts in a real browser: every label inside its drawing, at a desk's width
and a phone's, even for a 1,234.5-hour week and a long figure name; the partner's
dashboard passes axe and prints on one or two US Letter pages; so does axe on the staff
scorecard."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, timedelta

import pytest
from axe_playwright_python.sync_playwright import Axe
from flask import get_template_attribute
from playwright.sync_api import expect

from portal.accounts.passwords import hash_password
from portal.extensions import db
from portal.scorecard.report import Trend
from portal.scorecard.tables import FIRST_TOUCH_MEDIAN, STARTED_CARE
from tests.fixtures.desk import PASSWORD, user

pytestmark = pytest.mark.e2e

DEMO_PARTNER = "partner@maple.example"
DEMO_STAFF = "success@portal.example"

# For each chart, the labels (<text>) whose box, in the chart's own coordinates (its
# rotation applied), does not lie inside the SVG's viewBox.
LABELS_OUTSIDE = """() => [...document.querySelectorAll("figure.chart svg")].map(svg => {
  const box = svg.viewBox.baseVal, toChart = svg.getScreenCTM().inverse();
  return [...svg.querySelectorAll("text")].filter(text => {
    const own = text.getBBox(), toSvg = toChart.multiply(text.getScreenCTM());
    return [[own.x, own.y], [own.x + own.width, own.y + own.height],
            [own.x, own.y + own.height], [own.x + own.width, own.y]].some(([x, y]) => {
      const p = new DOMPoint(x, y).matrixTransform(toSvg);
      return p.x < box.x || p.y < box.y || p.x > box.x + box.width || p.y > box.y + box.height;
    });
  }).map(text => text.textContent);
})"""


@pytest.fixture
def demo(app):
    """The demo desk, its partner and partner-success users signing in like the desk's."""
    from portal.demo import load_demo_data

    with app.app_context():
        load_demo_data(referral_count=60, seed=7)
        for email in (DEMO_PARTNER, DEMO_STAFF):
            user(email).password_hash = hash_password(PASSWORD)
        db.session.commit()


def page_count(pdf: bytes) -> int:
    """Pages in a PDF: its page objects (`/Type /Page`, not the `/Pages` tree nodes)."""
    return len(re.findall(rb"/Type\s*/Page(?![a-zA-Z])", pdf))


def test_a_partner_dashboard_reads_and_prints_on_one_or_two_letter_pages(
    app, demo, live_server, signed_in_page
):
    page = signed_in_page(DEMO_PARTNER, viewport={"width": 1280, "height": 900})
    page.goto(f"{live_server}/dashboard")
    charts = page.locator("figure.chart")
    expect(charts).to_have_count(2)
    assert page.evaluate(LABELS_OUTSIDE) == [[], []]
    assert page.locator("figure.chart svg text.tick").count() >= 4
    results = Axe().run(page)
    assert results.violations_count == 0, results.generate_report()

    # The Print button appears with portal.js and opens the browser's printing.
    page.evaluate("window.print = () => { window.printedFromButton = true; }")
    page.get_by_role("button", name="Print").click()
    assert page.evaluate("window.printedFromButton") is True

    page.emulate_media(media="print")
    for screen_only in (".site-header", "form.filters", "text=Download CSV", "[data-print]"):
        expect(page.locator(screen_only).first).to_be_hidden()
    expect(page.get_by_text("Printed from the referral portal")).to_be_visible()
    expect(page.get_by_role("heading", level=1)).to_contain_text("Maple Street Family Medicine")
    box = charts.nth(0).bounding_box(), charts.nth(1).bounding_box()
    assert box[0]["y"] == box[1]["y"] and box[0]["x"] < box[1]["x"]  # side by side
    assert page.evaluate(LABELS_OUTSIDE) == [[], []]
    assert 1 <= page_count(page.pdf(format="Letter")) <= 2
    assert page.js_errors == []


def test_the_staff_scorecard_passes_axe(demo, live_server, signed_in_page):
    page = signed_in_page(DEMO_STAFF)
    page.goto(f"{live_server}/scorecard")
    expect(page.locator("figure.chart")).to_have_count(4)
    assert page.evaluate(LABELS_OUTSIDE) == [[], [], [], []]
    results = Axe().run(page)
    assert results.violations_count == 0, results.generate_report()


@pytest.mark.parametrize("width", [1280, 360])
def test_no_label_is_clipped_for_extreme_values_or_a_long_name(app, live_server, browser, width):
    """A 1,234.5-hour week, zeros and empty weeks, and a figure name longer than any we
    have: drawn by the same macro, styled by the portal's stylesheet."""
    weeks = [date(2026, 9, 7) + timedelta(weeks=i) for i in range(12)]
    long_name = replace(
        FIRST_TOUCH_MEDIAN,
        label="Referral to first touch for referrals sent by the office's satellite clinics, "
        "median, in wall-clock hours including nights, weekends and public holidays",
    )
    trends = [
        Trend(long_name, weeks, [0, None, 1234.5, 4.2, 7, 18, 9, None, 0, 3, 1, 2]),
        Trend(STARTED_CARE, weeks, [0.0, None, 35, 100, 50, 12.5, 9, None, 0, 3, 1, 2]),
    ]
    with app.test_request_context():
        bar_chart = get_template_attribute("scorecard/_chart.html", "bar_chart")
        charts = "".join(str(bar_chart(trend)) for trend in trends)
    context = browser.new_context(viewport={"width": width, "height": 800})
    page = context.new_page()
    page.set_content(
        f'<!doctype html><html lang="en"><head><title>Charts</title><link rel="stylesheet" '
        f'href="{live_server}/static/portal.css"></head><body><main class="wrap">'
        f'<section class="charts">{charts}</section></main></body></html>',
        wait_until="load",
    )
    assert page.evaluate(LABELS_OUTSIDE) == [[], []]
    assert page.locator("text.value", has_text="0.0 h").count() == 2
    assert page.locator("text.value", has_text="no data").count() == 4
    caption = page.locator("figcaption").first
    assert caption.evaluate("c => c.scrollWidth <= c.clientWidth")
    expect(caption).to_contain_text("public holidays")
    context.close()
