"""The staff scorecard, its CSV downloads, and the partner's own dashboard."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

from flask import Blueprint, Response, abort, render_template, request
from flask_login import current_user
from sqlalchemy import select

from portal.accounts.sessions import roles_required
from portal.auditing import record_audit
from portal.extensions import db
from portal.models import Partner, Role
from portal.scorecard.periods import Period, parse_period, today
from portal.scorecard.report import scorecard_report, scorecard_tables, trend_table

bp = Blueprint("scorecard", __name__)

SCORECARD_ROLES = (Role.PARTNER_SUCCESS, Role.ADMIN, Role.INTAKE, Role.CLINICAL)


def _partner_filter() -> int | None:
    return request.args.get("partner", type=int) or None


def _staff_report(period: Period, partner_id: int | None):
    tables, trend_list = scorecard_report(period, partner_id, staff=True)
    return tables + [trend_table(trend_list)], trend_list


@bp.get("/scorecard")
@roles_required(*SCORECARD_ROLES)
def scorecard():
    """Where referrals leak: a week, a month or a range; all partners or one."""
    period = parse_period(request.args)
    partner_id = _partner_filter()
    tables, trend_list = _staff_report(period, partner_id)
    return render_template(
        "scorecard/scorecard.html",
        period=period,
        partner_id=partner_id,
        partners=db.session.scalars(select(Partner).order_by(Partner.name)).all(),
        tables=tables,
        trends=trend_list,
        today=today(),
    )


@bp.get("/scorecard/<name>.csv")
@roles_required(*SCORECARD_ROLES)
def scorecard_csv(name: str):
    """One scorecard table as CSV, for the same period and partner as the page."""
    period = parse_period(request.args)
    partner_id = _partner_filter()
    tables, _trends = _staff_report(period, partner_id)
    table = _table_or_404(tables, name)
    record_audit(
        "scorecard.exported",
        actor=current_user,
        target_type="scorecard",
        target_id=name,
        period=period.label,
        partner_id=partner_id,
    )
    db.session.commit()
    return _csv(table, period)


@bp.get("/dashboard")
@roles_required(Role.PARTNER)
def partner_dashboard():
    """A referring office's own funnel, time to first touch and outcome mix."""
    period = parse_period(request.args, default=_last_90_days())
    tables, trend_list = scorecard_report(
        period, current_user.partner_id, staff=False, trend_figures=2
    )
    return render_template(
        "scorecard/dashboard.html",
        period=period,
        tables=tables,
        trends=trend_list,
        today=today(),
    )


@bp.get("/dashboard/<name>.csv")
@roles_required(Role.PARTNER)
def partner_dashboard_csv(name: str):
    """The partner's own dashboard tables as CSV."""
    period = parse_period(request.args, default=_last_90_days())
    tables = scorecard_tables(period, current_user.partner_id, staff=False)
    table = _table_or_404(tables, name)
    record_audit("dashboard.exported", actor=current_user, target_type="dashboard", target_id=name)
    db.session.commit()
    return _csv(table, period)


def _last_90_days() -> Period:
    end = today()
    return Period("custom", end - timedelta(days=89), end)


def _table_or_404(tables, name: str):
    """The table a CSV asks for; a name that is not one is a 404, and not an export."""
    table = next((t for t in tables if t.name == name), None)
    if table is None:
        abort(404)
    return table


def _csv(table, period: Period) -> Response:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(table.header)
    writer.writerows(["" if cell is None else cell for cell in row] for row in table.rows)
    filename = f"{table.name}-{period.first_day.isoformat()}-{period.last_day.isoformat()}.csv"
    response = Response(buffer.getvalue(), mimetype="text/csv")
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response
