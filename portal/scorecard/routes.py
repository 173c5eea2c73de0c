"""The staff scorecard, its CSV downloads, the partner's own dashboard, and the data
dictionary of every export."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, Response, abort, render_template
from flask_login import current_user
from sqlalchemy import select

from portal.accounts.sessions import roles_required
from portal.auditing import record_audit
from portal.exports import DICTIONARY, Export, Kind, csv_download, dictionary_rows
from portal.extensions import db
from portal.localtime import practice_zone
from portal.models import Partner, Role
from portal.query_args import choice_arg, date_arg, id_arg
from portal.scorecard.periods import PERIOD_KINDS, Period, parse_period, today
from portal.scorecard.report import Table, display, one_table, scorecard_report
from portal.scorecard.tables import ScorecardTable, tables_for

bp = Blueprint("scorecard", __name__)
bp.add_app_template_filter(display, "figure")

SCORECARD_ROLES = (Role.PARTNER_SUCCESS, Role.ADMIN, Role.INTAKE, Role.CLINICAL)


def _requested_period(default: Period | None = None) -> Period:
    """The period the query string asks for, each argument parsed and bounded first."""
    return parse_period(
        choice_arg("period", PERIOD_KINDS),
        on=date_arg("on"),
        start=date_arg("start"),
        end=date_arg("end"),
        default=default,
    )


def _dashboard_period() -> Period:
    # A partner always sees its own office. A `partner` argument is still bounded like
    # everywhere else (a malformed one is a 400), then ignored.
    id_arg("partner")
    end = today()
    return _requested_period(default=Period("custom", end - timedelta(days=89), end))


def _download_args(period: Period, partner_id: int | None = None) -> dict:
    """The query arguments that ask a CSV for exactly the period (and partner) shown."""
    return {**period.arguments, "partner": partner_id}


@bp.get("/scorecard")
@roles_required(*SCORECARD_ROLES)
def scorecard():
    """Where referrals leak: a week, a month or a range; all partners or one."""
    period = _requested_period()
    partner_id = id_arg("partner")
    tables, trend_list = scorecard_report(period, partner_id, staff=True)
    return render_template(
        "scorecard/scorecard.html",
        period=period,
        partner_id=partner_id,
        partners=db.session.scalars(select(Partner).order_by(Partner.name)).all(),
        tables=tables,
        trends=trend_list,
        today=today(),
        download_args=_download_args(period, partner_id),
    )


@bp.get("/scorecard/<name>.csv")
@roles_required(*SCORECARD_ROLES)
def scorecard_csv(name: str):
    """One scorecard table as CSV, for the same period and partner as the page."""
    period = _requested_period()
    partner_id = id_arg("partner")
    table = one_table(_table_or_404(name, staff=True, partner_id=partner_id), period, partner_id)
    record_audit(
        "scorecard.exported",
        actor=current_user,
        target_type="scorecard",
        target_id=name,
        period=period.label,
        partner_id=partner_id,
    )
    db.session.commit()
    partner_part = f"partner-{partner_id}" if partner_id else None
    return _download(table, period, partner_part)


@bp.get("/dashboard")
@roles_required(Role.PARTNER)
def partner_dashboard():
    """A referring office's own funnel, time to first touch and outcome mix."""
    period = _dashboard_period()
    tables, trend_list = scorecard_report(
        period, current_user.partner_id, staff=False, trend_figures=2
    )
    return render_template(
        "scorecard/dashboard.html",
        period=period,
        tables=tables,
        trends=trend_list,
        today=today(),
        download_args=_download_args(period),
    )


@bp.get("/dashboard/<name>.csv")
@roles_required(Role.PARTNER)
def partner_dashboard_csv(name: str):
    """The partner's own dashboard tables as CSV."""
    period = _dashboard_period()
    partner_id = current_user.partner_id
    table = one_table(_table_or_404(name, staff=False, partner_id=partner_id), period, partner_id)
    record_audit("dashboard.exported", actor=current_user, target_type="dashboard", target_id=name)
    db.session.commit()
    return _download(table, period)


@bp.get("/exports/dictionary")
@roles_required(*Role)
def data_dictionary():
    """What every column of every export you can download holds: type, unit, meaning."""
    exports = _exports_for_current_user()
    return render_template(
        "scorecard/dictionary.html",
        exports=exports,
        rows={export.name: dictionary_rows([export]) for export in exports},
        dictionary=DICTIONARY,
        kinds=list(Kind),
        zone=practice_zone().key,
        source="scorecard.partner_dashboard"
        if current_user.is_partner_user
        else "scorecard.scorecard",
    )


@bp.get("/exports/dictionary.csv")
@roles_required(*Role)
def data_dictionary_csv():
    """The data dictionary as CSV, from the same declarations as the page."""
    rows = dictionary_rows(_exports_for_current_user())
    record_audit(
        "dictionary.exported", actor=current_user, target_type="export", target_id=DICTIONARY.name
    )
    db.session.commit()
    return csv_download(DICTIONARY.columns, rows, "data-dictionary")


def _exports_for_current_user() -> list[Export]:
    """The exports this user can download (a partner: its dashboard's), and the
    dictionary itself."""
    staff = not current_user.is_partner_user
    partner_id = None if staff else current_user.partner_id
    return [*tables_for(staff=staff, partner_id=partner_id), DICTIONARY]


def _table_or_404(name: str, *, staff: bool, partner_id: int | None) -> ScorecardTable:
    """The table a CSV asks for; a name that is not one is a 404, and not an export."""
    table = next(
        (t for t in tables_for(staff=staff, partner_id=partner_id) if t.name == name), None
    )
    if table is None:
        abort(404)
    return table


def _download(table: Table, period: Period, *more_name: str | None) -> Response:
    return csv_download(
        table.columns, table.file_rows(), table.name, period.first_day, period.last_day, *more_name
    )
