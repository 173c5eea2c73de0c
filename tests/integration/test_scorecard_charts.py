"""The scorecard's bar charts as drawn on the server: a zero is a labelled stub on the
baseline, a week without data is marked and explained, the scale is round and in the
figure's unit, and the same figures are a table for screen readers."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, timedelta

import pytest
from flask import get_template_attribute

from portal.clock import frozen_at
from portal.models import Status
from portal.scorecard.report import Trend
from portal.scorecard.tables import FIRST_TOUCH_MEDIAN, STARTED_CARE
from tests.fixtures.desk import make_referral

WEEKS = [date(2026, 9, 7) + timedelta(weeks=i) for i in range(12)]
HOURS = [0, None, 1234.5, 4.2, 7, 18, 9, None, 0, 3, 1, 2]


def draw(app, column, values) -> ET.Element:
    """The chart macro's <figure>, parsed (its markup is well-formed XML)."""
    with app.test_request_context():
        bar_chart = get_template_attribute("scorecard/_chart.html", "bar_chart")
        markup = str(bar_chart(Trend(column, WEEKS, values))).strip()
        return ET.fromstring(markup)  # noqa: S314 - the portal's own markup


def texts(figure: ET.Element, kind: str) -> list[str]:
    return [t.text for t in figure.iter("text") if t.get("class") == kind]


def bars(figure: ET.Element) -> list[ET.Element]:
    return [r for r in figure.iter("rect") if r.get("class", "").startswith("bar")]


def baseline_y(figure: ET.Element) -> float:
    (line,) = [line for line in figure.iter("line") if line.get("class") == "baseline"]
    assert line.get("y1") == line.get("y2")
    return float(line.get("y1"))


def test_zero_is_a_visible_stub_on_the_baseline_labelled_with_its_value(app):
    figure = draw(app, FIRST_TOUCH_MEDIAN, HOURS)
    base = baseline_y(figure)
    zero = bars(figure)[0]
    assert zero.get("class") == "bar" and zero.get("fill") == "#0b5cab"
    assert float(zero.get("height")) >= 2
    assert float(zero.get("y")) + float(zero.get("height")) == pytest.approx(base)
    assert zero.find("title").text == "Sep 7: 0.0 h"
    assert texts(figure, "value").count("0.0 h") == 2  # both zero weeks, nothing else


def test_a_week_without_data_is_marked_unlike_zero_and_explained(app):
    figure = draw(app, STARTED_CARE, [0.0, None, 35, *[10] * 9])
    zero, missing = bars(figure)[:2]
    assert missing.get("class") == "bar missing" and missing.get("stroke-dasharray")
    assert missing.get("fill") != zero.get("fill")
    assert missing.find("title").text == "Sep 14: no data"
    assert texts(figure, "value") == ["0.0%", "no data"]
    legend = figure.find("p[@class='chart-legend']")
    assert "".join(legend.itertext()).strip() == "No data: nothing to measure that week."
    # With every week known there is nothing to explain.
    assert draw(app, STARTED_CARE, [10] * 12).find("p[@class='chart-legend']") is None


@pytest.mark.parametrize(
    ("column", "values", "ticks"),
    [
        (FIRST_TOUCH_MEDIAN, HOURS, ["0 h", "500 h", "1,000 h", "1,500 h"]),
        (FIRST_TOUCH_MEDIAN, [7.4, 2.0, *[None] * 10], ["0 h", "2 h", "4 h", "6 h", "8 h"]),
        (FIRST_TOUCH_MEDIAN, [None] * 12, ["0 h", "1 h"]),
        (STARTED_CARE, [35.0, 0.0, *[None] * 10], ["0%", "25%", "50%", "75%", "100%"]),
    ],
)
def test_the_scale_is_round_and_in_the_figures_unit(app, column, values, ticks):
    figure = draw(app, column, values)
    assert texts(figure, "tick") == ticks
    gridlines = [line for line in figure.iter("line") if line.get("class") == "gridline"]
    assert len(gridlines) == len(ticks) - 1  # the baseline is the first


def test_bar_heights_follow_the_scale(app):
    figure = draw(app, FIRST_TOUCH_MEDIAN, HOURS)
    base = baseline_y(figure)
    top = min(float(line.get("y1")) for line in figure.iter("line"))  # the 1,500 h line
    tallest = bars(figure)[2]
    assert float(tallest.get("height")) == pytest.approx((base - top) * 1234.5 / 1500, abs=0.1)


def test_week_labels_stay_inside_the_drawing_and_the_latest_is_named(app):
    figure = draw(app, FIRST_TOUCH_MEDIAN, HOURS)
    svg = figure.find("svg")
    width = float(svg.get("viewBox").split()[2])
    weeks = [t for t in svg.iter("text") if t.get("class") == "week"]
    assert weeks[-1].text == "Nov 23" and 6 <= len(weeks) <= 12  # every bar or every other
    for label in weeks + [t for t in svg.iter("text") if t.get("class") == "tick"]:
        # Half a label's estimated width either side of its anchor (the estimate is the
        # macro's; tests/e2e measures real text).
        estimate = len(label.text) * 0.65 * 11
        x = float(label.get("x"))
        if label.get("text-anchor") == "middle":
            assert estimate / 2 <= x <= width - estimate / 2, label.text
        else:
            assert x - estimate >= 0, label.text


def test_the_svg_is_hidden_from_screen_readers_and_the_table_holds_the_same_figures(app):
    figure = draw(app, FIRST_TOUCH_MEDIAN, HOURS)
    assert figure.find("svg").get("aria-hidden") == "true"
    assert figure.find("figcaption").text == "Referral to first touch, median"
    table = figure.find("div[@class='visually-hidden']/table")
    assert table.find("caption").text == "Referral to first touch, median, week by week"
    header = [th.text for th in table.find("thead").iter("th")]
    assert header == ["Week starting", "Referral to first touch, median"]
    rows = [(tr.find("th").text, tr.find("td").text) for tr in table.find("tbody")]
    assert rows[:4] == [
        ("Sep 7, 2026", "0.0 h"),
        ("Sep 14, 2026", "no data"),
        ("Sep 21, 2026", "1,234.5 h"),
        ("Sep 28, 2026", "4.2 h"),
    ]
    assert len(rows) == 12 and rows[-1] == ("Nov 23, 2026", "2.0 h")


@pytest.mark.parametrize(
    ("email", "path", "charts"), [("partner_a", "/dashboard", 2), ("success", "/scorecard", 4)]
)
def test_every_chart_on_the_pages_has_its_table(client_for, desk, app, email, path, charts):
    with app.app_context(), frozen_at(datetime(2026, 11, 18, 15, tzinfo=UTC)):
        make_referral(desk, Status.ACCEPTED)
    page = client_for(getattr(desk, email)).get(f"{path}?period=week&on=2026-11-16")
    html = page.get_data(as_text=True)
    assert html.count('aria-hidden="true" focusable="false"') == charts
    assert html.count("week by week</caption>") == charts
    assert html.count('class="baseline"') == charts
    # Accepted but not started: a 0.0% that is read out, not an invisible bar.
    assert '<th scope="row">Nov 16, 2026</th><td>0.0%</td>' in html


def test_the_partner_dashboard_offers_printing(client_for, desk):
    html = client_for(desk.partner_a).get("/dashboard").get_data(as_text=True)
    assert "data-print hidden>Print</button>" in html
    assert '<p class="print-only">Printed from the referral portal. Figures as of ' in html
