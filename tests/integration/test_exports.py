"""Every export opens right in a spreadsheet: read back with pandas, as an analyst would.

The exports under test are found, not listed: every `.csv` route of the app, every
table each audience may download, and the data dictionary that describes them all.
"""

from __future__ import annotations

import io
import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pandas as pd
import pytest

from portal.clock import frozen_at
from portal.exports import Column, Kind, csv_bytes, csv_cell, safe_filename
from portal.extensions import db
from portal.models import Partner, SlaClock, SlaStage, Status
from portal.scorecard.tables import TABLES, tables_for
from tests.integration.test_metrics import referral

BOM = b"\xef\xbb\xbf"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
EVIL_PARTNER = '=HYPERLINK("http://x","click")'
EVIL_REASONS = ("=1+2", "+SUM(A1:A9)", "-2+3", "@cmd", "\tTAB")
# A week of the practice's calendar (Monday 2 November 2026, New York), looked at once
# every referral's 30 days have passed.
WEEK = "period=week&on=2026-11-02"
NOW = datetime(2026, 12, 31, 12, tzinfo=UTC)
TUESDAY = datetime(2026, 11, 3, 14, tzinfo=UTC)


@pytest.fixture
def week(app, desk):
    """Five referrals with answers worked out by hand (see the assertions).

    Alpha: touched after 1 h (completed, outcome after 48 h), 2 h (accepted), 4 h
    (declined, had needed information), and one not touched yet. Beta, named like a
    formula: one, not touched. Five breaches whose reasons look like formulas.
    """
    with app.app_context():
        db.session.get(Partner, desk.partner_b_id).name = EVIL_PARTNER
        hour = timedelta(hours=1)
        first = referral(
            desk,
            TUESDAY,
            status=Status.COMPLETED,
            first_touch_at=TUESDAY + hour,
            outcome_at=TUESDAY + 48 * hour,
        )
        referral(desk, TUESDAY + hour, status=Status.ACCEPTED, first_touch_at=TUESDAY + 3 * hour)
        wednesday = TUESDAY + 24 * hour
        referral(
            desk,
            wednesday,
            status=Status.DECLINED,
            first_touch_at=wednesday + 4 * hour,
            needs_info_at=wednesday + hour,
        )
        referral(desk, wednesday + hour)
        referral(desk, TUESDAY + 48 * hour, partner_id=desk.partner_b_id)
        for stage, reason in zip(
            (
                SlaStage.FIRST_TOUCH,
                SlaStage.TRIAGE,
                SlaStage.NEXT_STEP,
                SlaStage.VISIT,
                SlaStage.TRIAGE,
            ),
            EVIL_REASONS,
            strict=True,
        ):
            db.session.add(
                SlaClock(
                    referral_id=first.id,
                    stage=stage,
                    owner_role=stage.owner,
                    target_minutes=60,
                    started_at=TUESDAY,
                    breached_at=TUESDAY + 2 * hour,
                    stopped_at=TUESDAY + 3 * hour,
                    breach_reason=reason,
                )
            )
        db.session.commit()


@pytest.fixture
def at_now(client_for):
    """A signed-in client whose requests run at NOW (the session begins then too)."""

    def make(email):
        with frozen_at(NOW):
            return client_for(email)

    return make


def download(client, path: str):
    with frozen_at(NOW):
        response = client.get(path)
    assert response.status_code == 200, (path, response.status_code)
    return response


def spreadsheet(response) -> pd.DataFrame:
    return pd.read_csv(io.BytesIO(response.data), encoding="utf-8-sig")


def dictionary_of(client) -> pd.DataFrame:
    return spreadsheet(download(client, "/exports/dictionary.csv"))


def exports_of(audience: str):
    """(download path, table) for every table the audience may download."""
    if audience == "staff":
        return [(f"/scorecard/{t.name}.csv?{WEEK}", t) for t in TABLES]
    return [(f"/dashboard/{t.name}.csv?{WEEK}", t) for t in tables_for(staff=False, partner_id=1)]


def test_every_csv_route_is_one_these_tests_download(app):
    """A new export route must join the tests below (and the dictionary)."""
    routes = {rule.rule for rule in app.url_map.iter_rules() if rule.rule.endswith(".csv")}
    assert routes == {"/scorecard/<name>.csv", "/dashboard/<name>.csv", "/exports/dictionary.csv"}


@pytest.mark.parametrize("audience", ["staff", "partner"])
def test_every_export_reads_back_typed_in_a_spreadsheet(at_now, desk, week, audience):
    client = at_now(desk.success if audience == "staff" else desk.partner_a)
    documented = dictionary_of(client)
    for path, table in [*exports_of(audience), ("/exports/dictionary.csv", None)]:
        response = download(client, path)
        assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
        disposition = response.headers["Content-Disposition"]
        assert re.fullmatch(r'attachment; filename="[A-Za-z0-9._-]+\.csv"', disposition)
        if table is not None:
            assert f'"{table.name}-2026-11-02-2026-11-08.csv"' in disposition
        assert response.data.startswith(BOM)
        frame = spreadsheet(response)
        name = table.name if table is not None else "dictionary"
        kinds = dict(
            documented.loc[documented["export"] == name, ["column", "type"]].itertuples(index=False)
        )
        # The dictionary lists exactly the file's columns, and each reads back as its type.
        assert list(frame.columns) == list(kinds), name
        for column, kind in kinds.items():
            values = frame[column]
            if kind in ("integer", "number"):
                assert pd.api.types.is_numeric_dtype(values), (name, column)
            elif kind == "date":
                parsed = pd.to_datetime(values.dropna(), format="%Y-%m-%d")
                assert parsed.notna().all(), (name, column)
            else:
                assert kind == "text", (name, column, kind)
                assert not values.dropna().astype(str).str.startswith(FORMULA_STARTS).any()
        # Empty is an empty cell (NaN when read), never a dash standing in for nothing.
        assert not frame.isin(["—", "-"]).any().any(), name


def test_figures_match_the_hand_computed_answers(at_now, desk, week):
    staff = at_now(desk.success)
    (summary,) = spreadsheet(download(staff, f"/scorecard/summary.csv?{WEEK}")).to_dict("records")
    assert summary["first_touch_median_hours"] == 2.0  # of 1, 2 and 4 h
    assert summary["first_touch_p90_hours"] == 4.0  # nearest rank: the 3rd of 3
    assert (summary["touched_referrals"], summary["submitted_referrals"]) == (3, 5)
    assert summary["started_care_percent"] == 20.0  # 1 of 5
    assert summary["cycle_time_median_hours"] == 48.0
    assert summary["incomplete_percent"] == 20.0
    # Alpha's first three were each followed within 30 days; its last and Beta's were not.
    assert summary["re_referral_percent"] == 60.0
    assert (
        summary["followed_within_30_days_referrals"],
        summary["thirty_days_elapsed_referrals"],
    ) == (3, 5)

    league = spreadsheet(download(staff, f"/scorecard/league.csv?{WEEK}"))
    beta, alpha = league.to_dict("records")  # lowest conversion first
    assert beta["partner"] == "'" + EVIL_PARTNER  # inert: a quote first, read back as text
    assert beta["started_care_percent"] == 0.0 and pd.isna(beta["first_touch_median_hours"])
    assert (alpha["partner"], alpha["submitted_referrals"]) == ("Alpha Primary Care", 4)
    assert (alpha["started_care_percent"], alpha["re_referral_percent"]) == (25.0, 75.0)

    trends = spreadsheet(download(staff, f"/scorecard/trends.csv?{WEEK}"))
    weeks = pd.to_datetime(trends["week_starting"], format="%Y-%m-%d")
    assert len(weeks) == 12 and (weeks.dt.day_of_week == 0).all()  # Mondays
    assert trends["week_starting"].iloc[-1] == "2026-11-02"
    assert trends["first_touch_median_hours"].iloc[-1] == 2.0
    assert trends["started_care_percent"].iloc[:-1].isna().all()  # weeks with no referrals

    months = spreadsheet(download(staff, f"/scorecard/months.csv?{WEEK}"))
    assert set(months["month_starting"]) == {"2026-11-01"}
    assert set(months["partner"]) == {"Alpha Primary Care", "'" + EVIL_PARTNER}
    assert months["scheduling_completion_percent"].isna().all()  # nothing accepted+triaged

    own = spreadsheet(download(at_now(desk.partner_a), f"/dashboard/summary.csv?{WEEK}"))
    assert own.loc[0, "submitted_referrals"] == 4 and own.loc[0, "started_care_percent"] == 25.0


def test_free_text_that_looks_like_a_formula_is_inert(at_now, desk, week):
    staff = at_now(desk.success)
    breaches = spreadsheet(download(staff, f"/scorecard/breaches.csv?{WEEK}"))
    assert sorted(breaches["reason"]) == sorted("'" + reason for reason in EVIL_REASONS)
    assert (breaches["breaches"] == 1).all()
    raw = download(staff, f"/scorecard/league.csv?{WEEK}").data.decode("utf-8-sig")
    assert '"\'=HYPERLINK(""http://x"",""click"")"' in raw  # quoted, quotes doubled
    page = download(staff, f"/scorecard?{WEEK}").get_data(as_text=True)
    assert "=HYPERLINK(&#34;http://x&#34;,&#34;click&#34;)" in page  # the page shows it as is


def test_the_writer_types_every_cell():
    assert [csv_cell(v) for v in (-3, 2.5, Decimal("-1.50"), None, True, False)] == [
        "-3",
        "2.5",
        "-1.50",
        "",
        "true",
        "false",
    ]
    assert csv_cell(date(2026, 11, 2)) == "2026-11-02"
    assert csv_cell(datetime(2026, 11, 2, 10, 30, tzinfo=UTC)) == "2026-11-02T10:30:00Z"
    assert [csv_cell(t) for t in ("-3", "@x", "\rx", "a=b", "é — ok")] == [
        "'-3",
        "'@x",
        "'\rx",
        "a=b",
        "é — ok",
    ]
    with pytest.raises(ValueError):
        csv_cell(datetime(2026, 11, 2, 10, 30))  # which zone?
    wait = Column("wait_hours", "Wait", Kind.NUMBER, "How long.", "hours")
    with pytest.raises(TypeError):
        csv_bytes([wait], [("4.2 h",)])  # a unit in the cell is a declaration bug
    with pytest.raises(ValueError):
        Column("wait", "Wait", Kind.NUMBER, "How long.", "hours")  # the unit is not in the name
    with pytest.raises(ValueError):
        Column("Wait Time", "Wait", Kind.TEXT, "How long.")
    assert safe_filename("a/b", 'c"d', date(2026, 1, 2)) == "a-b-c-d-2026-01-02.csv"


@pytest.mark.parametrize("audience", ["staff", "partner"])
def test_the_dictionary_lists_every_column_of_every_export(at_now, desk, week, audience):
    client = at_now(desk.success if audience == "staff" else desk.partner_a)
    page = download(client, "/exports/dictionary").get_data(as_text=True)
    documented = dictionary_of(client)
    listed = set(documented["export"])
    for path, table in [*exports_of(audience), ("/exports/dictionary.csv", None)]:
        name = table.name if table is not None else "dictionary"
        header = list(spreadsheet(download(client, path)).columns)
        rows = documented[documented["export"] == name]
        assert list(rows["column"]) == header
        assert rows["meaning"].notna().all() and rows["label"].notna().all()
        section = page.split(f'id="export-{name}"')[1].split("</section>")[0]
        for column in header:
            assert f"<code>{column}</code>" in section, (name, column)
        listed.discard(name)
    assert listed == set()  # nothing documented that cannot be downloaded
    units = dict(zip(documented["column"], documented["unit"], strict=True))
    assert units["first_touch_median_hours"] == "hours"
    if audience == "partner":
        assert "breach" not in page.lower() and "league" not in page.lower()


@pytest.mark.parametrize(
    ("email", "page"),
    [("success@desk.example", "/scorecard"), ("office@alpha.example", "/dashboard")],
)
def test_pages_link_the_dictionary_beside_the_downloads(at_now, week, email, page):
    html = download(at_now(email), f"{page}?{WEEK}").get_data(as_text=True)
    assert 'href="/exports/dictionary#export-summary"' in html
    assert 'summary.csv?period=week&amp;on=2026-11-02"' in html


BAD_ARGUMENTS = [
    "on=9999-12-31",
    "period=week&on=9999-12-31",
    "period=month&on=0001-01-01",
    "on=0001-01-01",
    "partner=9223372036854775808",
    "partner=1" + "0" * 30,
    "partner=-1",
    "on=2026-02-30",
    "period=fortnight",
    "period=custom&start=2026-11-01&end=10000-01-01",
]


@pytest.mark.parametrize("arguments", BAD_ARGUMENTS)
@pytest.mark.parametrize(
    ("email", "path"),
    [
        ("success@desk.example", "/scorecard"),
        ("success@desk.example", "/scorecard/summary.csv"),
        ("office@alpha.example", "/dashboard"),
        ("office@alpha.example", "/dashboard/summary.csv"),
    ],
)
def test_out_of_range_arguments_answer_400(client_for, desk, email, path, arguments):
    response = client_for(email).get(f"{path}?{arguments}")
    assert response.status_code == 400, response.status_code


@pytest.mark.parametrize("arguments", ["period=month&on=2199-12-31", "period=week&on=1900-01-01"])
def test_the_calendar_edges_query_args_allow_still_work(client_for, desk, arguments):
    client = client_for(desk.success)
    assert client.get(f"/scorecard?{arguments}").status_code == 200
    assert client.get(f"/scorecard/trends.csv?{arguments}").status_code == 200
