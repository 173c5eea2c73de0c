"""A whole scorecard for one period: the figures, the tables and the 12-week trends.

The page, the CSV downloads and the weekly email all read this one structure, so a
CSV always matches its page: a `Table` holds raw typed values (hours and percentages as
numbers, weeks as dates, None for nothing) under the columns declared in `tables`. The
CSV writes them as they are; the page and the email show them through `display`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Any

from flask_babel import gettext

from portal.exports import Column, Kind
from portal.formatting import format_hours, format_number, format_percent, format_plain_day
from portal.scorecard import metrics
from portal.scorecard.concurrency import side_by_side
from portal.scorecard.periods import Period, weeks_ending
from portal.scorecard.tables import TREND_FIGURES, TRENDS, ScorecardTable, tables_for

Builder = Callable[[], Any]
NOTHING = "—"


def display(value: object, column: Column) -> str:
    """A value as people read it on the page: '4.2 h', '35%', 'Nov 16, 2026', '—'."""
    if value is None:
        return NOTHING
    if column.unit == "hours":
        return format_hours(value)
    if column.unit == "percent":
        return format_percent(value)
    if column.kind is Kind.DATE and isinstance(value, date):
        return format_plain_day(value)
    if column.kind is Kind.BOOLEAN:
        return gettext("yes") if value else gettext("no")
    if isinstance(value, int):
        return format_number(value)
    return str(value)


@dataclass(frozen=True)
class Table:
    """A declared table's rows for one period: raw values, in column order."""

    spec: ScorecardTable
    rows: list[tuple]

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def title(self) -> str:
        return self.spec.title

    @property
    def columns(self) -> tuple[Column, ...]:
        return self.spec.columns

    def figures(self) -> list[tuple[Column, object]]:
        """(column, value) for a one-row table shown as heading: value lines."""
        return list(zip(self.columns, self.rows[0], strict=True)) if self.rows else []


@dataclass(frozen=True)
class Trend:
    """One figure week by week, oldest first, for a chart and the trends table."""

    column: Column
    weeks: list[date]  # each week's Monday
    values: list[float | None]


def scorecard_report(
    period: Period, partner_id: int | None, *, staff: bool, trend_figures: int = 4
) -> tuple[list[Table], list[Trend]]:
    """The tables and the trends together, every query of the page side by side. The
    trends table, where the page has one, is built from the charts' figures."""
    specs = tables_for(staff=staff, partner_id=partner_id)
    queried = [spec for spec in specs if spec.rows is not None]
    scope = period.scope(partner_id)
    builders = [_table_builder(spec, scope) for spec in queried]
    trend_list = _trend_builders(period, partner_id, trend_figures)
    results = side_by_side(builders + trend_list)
    built = dict(zip([spec.name for spec in queried], results[: len(builders)], strict=True))
    trends = results[len(builders) :]
    tables = [built[spec.name] if spec.rows is not None else trend_table(trends) for spec in specs]
    return tables, trends


def one_table(spec: ScorecardTable, period: Period, partner_id: int | None) -> Table:
    """A single table (for its CSV), running only its own queries."""
    if spec.rows is None:
        return trend_table(trends(period, partner_id))
    return _table_builder(spec, period.scope(partner_id))()


def _table_builder(spec: ScorecardTable, scope: metrics.Scope) -> Builder:
    assert spec.rows is not None
    rows = spec.rows
    return lambda: Table(spec, rows(scope))


def trends(
    period: Period, partner_id: int | None, figures: int = len(TREND_FIGURES)
) -> list[Trend]:
    """The last 12 weeks of the first `figures` headline figures."""
    return side_by_side(_trend_builders(period, partner_id, figures))


def _trend_builders(period: Period, partner_id: int | None, figures: int) -> list[Builder]:
    weeks = weeks_ending(period)
    cohorts = metrics.Cohorts.of([week.scope(partner_id) for week in weeks])
    mondays = [week.first_day for week in weeks]
    return [
        lambda column=column, values=values: Trend(column, mondays, values(cohorts))
        for column, values in TREND_FIGURES[:figures]
    ]


def trend_table(trend_list: list[Trend]) -> Table:
    """The trends as a table: a row per week, a column per figure (all of them)."""
    if [t.column for t in trend_list] != list(TRENDS.columns[1:]):
        raise ValueError("the trends table has every trend figure, in order")
    weeks = trend_list[0].weeks
    return Table(
        TRENDS, [(monday, *(t.values[i] for t in trend_list)) for i, monday in enumerate(weeks)]
    )
