"""A whole scorecard for one period: the figures, the tables and the 12-week trends.

The page, the CSV downloads and the weekly email all read this one structure, so a
CSV always matches its page: a `Table` holds raw typed values (hours and percentages as
numbers, weeks as dates, None for nothing) under the columns declared in `tables`. The
CSV writes them as they are; the page and the email show them through `display`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from flask_babel import gettext

from portal.clock import frozen_at
from portal.exports import Column, Kind
from portal.extensions import db
from portal.formatting import (
    format_hours,
    format_number,
    format_percent,
    format_plain_day,
    round_half_up,
)
from portal.scorecard import metrics, snapshots
from portal.scorecard.concurrency import side_by_side
from portal.scorecard.periods import (
    Period,
    last_complete_week,
    month_of,
    today,
    weeks_ending,
)
from portal.scorecard.tables import (
    HOURS_DECIMALS_IN_FILES,
    SUMMARY,
    TREND_FIGURES,
    TRENDS,
    ScorecardTable,
    rounded_percent,
    summary_rows_by_cohort,
    tables_for,
)

Builder = Callable[[], Any]
NOTHING = "—"


def display(value: object, column: Column) -> str:
    """A value as people read it on the page: '4.2 h', '35.3%', 'Nov 16, 2026', '—'.

    Hours and percentages arrive unrounded and are rounded here, once: hours to one
    decimal, percentages as the CSV writes them (`rounded_percent`)."""
    if value is None:
        return NOTHING
    if column.unit == "hours":
        return format_hours(value)
    if column.unit == "percent":
        return format_percent(rounded_percent(value), decimals=1)
    if column.kind is Kind.DATE and isinstance(value, date):
        return format_plain_day(value)
    if column.kind is Kind.BOOLEAN:
        return gettext("yes") if value else gettext("no")
    if isinstance(value, int):
        return format_number(value)
    return str(value)


def in_file(value: object, column: Column) -> object:
    """A value as the CSV writes it: hours to two decimals, percentages as the page shows
    them, each rounded once from the unrounded value."""
    if value is None:
        return None
    if column.unit == "hours":
        return round_half_up(value, HOURS_DECIMALS_IN_FILES)
    if column.unit == "percent":
        return rounded_percent(value)
    return value


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

    def file_rows(self) -> list[tuple]:
        """The rows as the CSV writes them (see `in_file`)."""
        return [
            tuple(in_file(value, column) for value, column in zip(row, self.columns, strict=True))
            for row in self.rows
        ]


@dataclass(frozen=True)
class Trend:
    """One figure week by week, oldest first, for a chart and the trends table."""

    column: Column
    weeks: list[date]  # each week's Monday
    values: list[float | None]


def scorecard_report(
    period: Period,
    partner_id: int | None,
    *,
    staff: bool,
    trend_figures: int = 4,
    parallel: bool = True,
) -> tuple[list[Table], list[Trend]]:
    """The tables and the trends together. The trends table, where the page has one, is
    built from the charts' figures. `parallel=False` runs the queries one after another
    (the jobs process: nobody waits, and a thread pool cannot start while it stops)."""
    specs = tables_for(staff=staff, partner_id=partner_id)
    queried = [s for s in specs if s.rows is not None]
    built, weekly = _figures(period, partner_id, queried, parallel=parallel)
    trend_list = _trends(weekly, trend_figures)
    tables = [
        built[spec.name] if spec.rows is not None else trend_table(trend_list) for spec in specs
    ]
    return tables, trend_list


def one_table(spec: ScorecardTable, period: Period, partner_id: int | None) -> Table:
    """A single table (for its CSV), running only its own queries."""
    if spec.rows is None:
        return trend_table(trends(period, partner_id))
    built, _weekly = _figures(period, partner_id, [spec], with_weeks=False)
    return built[spec.name]


def trends(
    period: Period, partner_id: int | None, figures: int = len(TREND_FIGURES)
) -> list[Trend]:
    """The last 12 weeks of the first `figures` headline figures."""
    return _trends(_figures(period, partner_id, [])[1], figures)


@dataclass(frozen=True)
class Weekly:
    """The 12 weeks a trend covers and each week's SUMMARY row."""

    mondays: list[date]
    summaries: list[tuple]


def _figures(
    period: Period,
    partner_id: int | None,
    specs: list[ScorecardTable],
    *,
    with_weeks: bool = True,
    parallel: bool = True,
) -> tuple[dict[str, Table], Weekly]:
    """The period's tables and the trend weeks' SUMMARY rows: read from the snapshots of
    closed periods while they are good, else computed (side by side), and stored when
    computed for a closed week or month."""
    memory = snapshots.Memory(partner_id)
    now = memory.now
    scope = period.scope(partner_id)
    weeks = weeks_ending(period) if with_weeks else []
    week_scopes = [week.scope(partner_id) for week in weeks]
    storable = period.kind in ("week", "month")
    stored = memory.recall(
        [(scope, spec.name) for spec in specs if storable]
        + [(week, SUMMARY.name) for week in week_scopes]
    )

    # Tasks answer (table name, rows) or (first week's index, that run's SUMMARY rows).
    tasks: list[Builder] = []
    tables: dict[str, list[tuple] | None] = {}
    for spec in specs:
        found = stored.get((scope.start, scope.end, spec.name))
        tables[spec.name] = found.rows if found else None
        if found is None:
            tasks.append(lambda name=spec.name, build=spec.rows: (name, build(scope)))
        elif spec.refresh_aged and snapshots.stored_before_settling(scope, found):
            tasks.append(
                lambda name=spec.name, found=found, refresh=spec.refresh_aged: (
                    name,
                    refresh(scope, found.rows, found.computed_at, now),
                )
            )
    summaries = [_first_row(stored.get((w.start, w.end, SUMMARY.name))) for w in week_scopes]
    missing = [i for i, row in enumerate(summaries) if row is None]
    for first, last in _runs(missing):
        span = metrics.Cohorts.of(week_scopes[first : last + 1])
        tasks.append(lambda span=span, first=first: (first, summary_rows_by_cohort(span)))
    aging = [
        i
        for i, w in enumerate(week_scopes)
        if i not in missing
        and snapshots.stored_before_settling(w, stored[w.start, w.end, SUMMARY.name])
    ]
    # Each only adds the referrals whose 30 days ended since it was stored: a few
    # index reads per week.
    for i in aging:
        found = stored[week_scopes[i].start, week_scopes[i].end, SUMMARY.name]
        tasks.append(
            lambda i=i, found=found: (
                i,
                SUMMARY.refresh_aged(week_scopes[i], found.rows, found.computed_at, now),
            )
        )

    # Every figure as of one instant, the one stored rows are dated with: a referral
    # whose 30 days end while this runs is counted once, now or by a later top-up.
    with frozen_at(now):
        results = side_by_side(tasks) if parallel else [task() for task in tasks]
    for key, rows in results:
        if isinstance(key, str):
            # Stored when new, and once more when topped up past its 30 days: from then
            # on time changes nothing and it is read as it is.
            if storable and (tables[key] is None or snapshots.is_settled(scope, now)):
                memory.remember(scope, key, rows)
            tables[key] = rows
            continue
        for i, row in enumerate(rows, start=key):
            if summaries[i] is None or snapshots.is_settled(week_scopes[i], now):
                memory.remember(week_scopes[i], SUMMARY.name, [row])
            summaries[i] = row
    if memory.remembered:
        db.session.commit()
    by_name = {spec.name: spec for spec in specs}
    return (
        {name: _shown(by_name[name], rows or []) for name, rows in tables.items()},
        Weekly([week.first_day for week in weeks], [row for row in summaries if row]),
    )


def _first_row(found: snapshots.Stored | None) -> tuple | None:
    return found.rows[0] if found else None


def _shown(spec: ScorecardTable, rows: list[tuple]) -> Table:
    """The table as pages and files show it: without what only the stored copy keeps."""
    if spec.stored_only:
        rows = [row[: -spec.stored_only] for row in rows]
    return Table(spec, rows)


def _runs(indices: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs of sorted indices, as (first, last)."""
    runs: list[tuple[int, int]] = []
    for i in indices:
        if runs and runs[-1][1] == i - 1:
            runs[-1] = (runs[-1][0], i)
        else:
            runs.append((i, i))
    return runs


def _trends(weekly: Weekly, figures: int) -> list[Trend]:
    positions = [SUMMARY.columns.index(column) for column in TREND_FIGURES[:figures]]
    return [
        Trend(column, weekly.mondays, [row[position] for row in weekly.summaries])
        for column, position in zip(TREND_FIGURES[:figures], positions, strict=True)
    ]


def store_closed_periods() -> None:
    """Compute and store the staff scorecard of last week and of last month (all
        partners), so that the first person to open them reads them at once. Safe to run
        often: periods already stored and still good cost a few statements each. Snapshots
    written under other definitions (an older release) are deleted first."""
    snapshots.forget_other_definitions()
    week = last_complete_week()
    last_month = month_of(today().replace(day=1) - timedelta(days=1))
    for period in (week, last_month):
        scorecard_report(period, None, staff=True, parallel=False)


def trend_table(trend_list: list[Trend]) -> Table:
    """The trends as a table: a row per week, a column per figure (all of them)."""
    if [t.column for t in trend_list] != list(TRENDS.columns[1:]):
        raise ValueError("the trends table has every trend figure, in order")
    weeks = trend_list[0].weeks
    return Table(
        TRENDS, [(monday, *(t.values[i] for t in trend_list)) for i, monday in enumerate(weeks)]
    )
