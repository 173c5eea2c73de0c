"""The scorecard as people use it: pages, CSVs that match them, and the weekly email."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime, timedelta

import pytest
from markupsafe import escape
from sqlalchemy import select

from portal.clock import frozen_at
from portal.exports import Kind
from portal.extensions import db
from portal.models import AuditEntry, OutboxMessage, Status, User
from portal.scorecard.report import display
from portal.scorecard.tables import TABLES
from portal.scorecard.tasks import send_weekly_scorecards
from tests.fixtures.desk import make_referral

MONDAY = datetime(2026, 11, 23, 15, tzinfo=UTC)


@pytest.fixture
def history(app, desk):
    with app.app_context(), frozen_at(MONDAY - timedelta(days=5)):
        make_referral(desk, Status.ACCEPTED)
        make_referral(desk, Status.DECLINED)
        make_referral(desk, Status.NEEDS_INFO, partner_email=desk.partner_b)
    return "period=week&on=2026-11-16"


def rows_of(response) -> list[list[str]]:
    return list(csv.reader(io.StringIO(response.get_data(as_text=True).removeprefix("\ufeff"))))


def read_back(cell: str, column):
    """A CSV cell as the typed value the page formatted."""
    if cell == "":
        return None
    if column.kind is Kind.INTEGER:
        return int(cell)
    if column.kind is Kind.NUMBER:
        return float(cell)
    if column.kind is Kind.DATE:
        return date.fromisoformat(cell)
    return cell


def test_staff_scorecard_shows_every_table_and_charts(client_for, desk, history):
    html = client_for(desk.success).get(f"/scorecard?{history}").get_data(as_text=True)
    assert "Week of Nov 16, 2026" in html
    for title in (
        "Partner league table",
        "Funnel",
        "Top breach reasons by stage",
        "Per partner and month",
        "Why referrals did not start care",
        "Last 12 weeks",
    ):
        assert title in html
    assert html.count("<svg") == 4 and "<script" not in html.split("</head>")[1]


def test_every_csv_matches_its_table_on_the_page(client_for, desk, history):
    """The CSV holds numbers under typed headers; shown as the page shows them, each is
    a cell of the same table on the page. Hours are in the file to two decimals and on
    the page to one, each rounded from the unrounded figure: the page shows one of the
    two values a file's 4.75 can have come from (4.745 to 4.755), 4.7 h or 4.8 h."""
    client = client_for(desk.success)
    page = client.get(f"/scorecard?{history}").get_data(as_text=True)
    for table in TABLES:
        response = client.get(f"/scorecard/{table.name}.csv?{history}")
        assert response.status_code == 200 and response.mimetype == "text/csv"
        assert "attachment" in response.headers["Content-Disposition"]
        header, *rows = rows_of(response)
        assert header == [column.name for column in table.columns]
        section = page.split(f'id="table-{table.name}"')[1].split("</section>")[0]
        for row in rows:
            for column, cell in zip(table.columns, row, strict=True):
                value = read_back(cell, column)
                if column.unit == "hours" and value is not None:
                    candidates = {display(value + d, column) for d in (-0.005, 0.005)}
                else:
                    candidates = {display(value, column)}
                assert any(f"<td>{escape(shown)}</td>" in section for shown in candidates), (
                    table.name,
                    column.name,
                    cell,
                )
    funnel = rows_of(client.get(f"/scorecard/funnel.csv?{history}"))
    assert funnel[1] == ["Received", "3"]


def test_exports_are_audited(app, client_for, desk, history):
    client_for(desk.admin).get(f"/scorecard/league.csv?{history}")
    with app.app_context():
        entry = db.session.scalar(
            select(AuditEntry).where(AuditEntry.action == "scorecard.exported")
        )
        assert entry.target_id == "league"


@pytest.mark.parametrize("email", ["admin", "partner_a"])
def test_the_data_dictionary_download_is_audited_like_every_export(app, client_for, desk, email):
    """The dictionary's CSV is an export like the others: who took it is on record."""
    response = client_for(getattr(desk, email)).get("/exports/dictionary.csv")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    with app.app_context():
        (entry,) = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "dictionary.exported")
        ).all()
        assert (entry.target_type, entry.target_id) == ("export", "dictionary")
        assert db.session.get(User, entry.actor_id).email == getattr(desk, email)


def test_one_partner_filter_narrows_every_figure(client_for, desk, history):
    funnel = rows_of(
        client_for(desk.success).get(f"/scorecard/funnel.csv?{history}&partner={desk.partner_b_id}")
    )
    assert funnel[1] == ["Received", "1"]


def test_partner_dashboard_shows_only_their_own_referrals(client_for, desk, history):
    alpha = client_for(desk.partner_a)
    page = alpha.get(f"/dashboard?{history}").get_data(as_text=True)
    assert "Alpha Primary Care" in page and "Beta Cardiology" not in page
    assert "league" not in page.lower() and "breach" not in page.lower()
    funnel = rows_of(alpha.get(f"/dashboard/funnel.csv?{history}"))
    assert funnel[1] == ["Received", "2"]  # beta's referral is not counted
    beta = rows_of(client_for(desk.partner_b).get(f"/dashboard/funnel.csv?{history}"))
    assert beta[1] == ["Received", "1"]
    assert alpha.get(f"/dashboard/league.csv?{history}").status_code == 404


@pytest.mark.parametrize("path", ["/scorecard", "/scorecard/league.csv"])
def test_partners_cannot_open_the_staff_scorecard(client_for, desk, path):
    assert client_for(desk.partner_a).get(path).status_code == 404


def test_the_weekly_summary_goes_to_partner_success_once(app, desk, history):
    with app.app_context(), frozen_at(MONDAY):
        assert send_weekly_scorecards() == 3  # partner success's, alpha's and beta's
        assert send_weekly_scorecards() == 0
        (message,) = db.session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.recipient == app.config["PARTNER_SUCCESS_EMAIL"]
            )
        ).all()
        assert message.subject == "Referral scorecard: Week of Nov 16, 2026"
        assert "Referral to started care" in message.body and "/scorecard?" in message.body
    with app.app_context(), frozen_at(MONDAY + timedelta(days=7)):
        assert send_weekly_scorecards() == 3  # the next week's


def test_a_custom_range_and_a_bad_one(client_for, desk, history):
    client = client_for(desk.success)
    html = client.get("/scorecard?period=custom&start=2026-11-01&end=2026-11-20").get_data(
        as_text=True
    )
    assert "Nov 1, 2026 to Nov 20, 2026" in html
    backwards = client.get("/scorecard?period=custom&start=2026-11-20&end=2026-11-01")
    assert backwards.status_code == 200 and "Week of" in backwards.get_data(as_text=True)
