"""A whole scorecard for one period: the figures, the tables and the 12-week trends.

The page, the CSV downloads and the weekly email all read this one structure, so a
CSV always matches its page.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from portal.scorecard import metrics
from portal.scorecard.concurrency import side_by_side
from portal.scorecard.periods import Period, weeks_ending

Builder = Callable[[], Any]


def percent(value: float | None) -> str:
    return "—" if value is None else f"{value * 100:.0f} %"


def hours(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f} h"


@dataclass(frozen=True)
class Table:
    name: str
    title: str
    header: list[str]
    rows: list[list]


def summary_rows(scope: metrics.Scope) -> list[list]:
    touch = metrics.first_touch_time(scope)
    conversion = metrics.started_care_conversion(scope)
    incomplete = metrics.incomplete_rate(scope)
    re_referral = metrics.re_referral_rate(scope)
    return [
        ["Referral to first touch, median", hours(touch.median_hours), f"{touch.touched} touched"],
        ["Referral to first touch, 90th percentile", hours(touch.p90_hours), ""],
        [
            "Referral to started care",
            percent(conversion.rate),
            f"{conversion.completed} of {conversion.submitted}",
        ],
        ["Median referral cycle time", hours(metrics.median_cycle_time_hours(scope)), ""],
        [
            "Incomplete referral rate",
            percent(incomplete.rate),
            f"{incomplete.part} of {incomplete.whole}",
        ],
        [
            "Partner re-referral within 30 days",
            percent(re_referral.rate),
            f"{re_referral.part} of {re_referral.whole} whose 30 days have passed",
        ],
    ]


def scorecard_tables(period: Period, partner_id: int | None, *, staff: bool) -> list[Table]:
    return side_by_side(_table_builders(period, partner_id, staff=staff))


def scorecard_report(
    period: Period, partner_id: int | None, *, staff: bool, trend_figures: int = 4
) -> tuple[list[Table], list[Trend]]:
    """The tables and the trends together, every query of the page side by side."""
    tables = _table_builders(period, partner_id, staff=staff)
    trend_list = _trend_builders(period, partner_id, trend_figures)
    results = side_by_side(tables + trend_list)
    return results[: len(tables)], results[len(tables) :]


def _table_builders(period: Period, partner_id: int | None, *, staff: bool) -> list[Builder]:
    scope = period.scope(partner_id)
    tables: list[Builder] = [
        lambda: Table("summary", "This period", ["Figure", "Value", "Out of"], summary_rows(scope)),
        lambda: Table(
            "funnel", "Funnel", ["Step", "Referrals"], [list(r) for r in metrics.funnel(scope)]
        ),
        lambda: Table(
            "outcomes",
            "Outcome mix",
            ["Outcome", "Referrals"],
            [list(r) for r in metrics.outcome_mix(scope)],
        ),
        lambda: Table(
            "not_converted",
            "Why referrals did not start care",
            ["Reason", "Referrals"],
            [list(r) for r in metrics.not_converted_reasons(scope)],
        ),
    ]
    if not staff:
        return tables
    tables += [
        lambda: Table(
            "breaches",
            "Top breach reasons by stage",
            ["Stage", "Reason", "Breaches"],
            [list(r) for r in metrics.top_breach_reasons(scope)],
        ),
        lambda: Table(
            "months",
            "Per partner and month",
            [
                "Month",
                "Partner",
                "Referrals",
                "Median hours to first contact",
                "Scheduling completion",
                "No-shows",
                "Reschedules",
            ],
            [
                [
                    r.month,
                    r.partner,
                    r.referrals,
                    hours(r.median_hours_to_first_contact),
                    percent(r.scheduling_completion),
                    r.no_shows,
                    r.reschedules,
                ]
                for r in metrics.partner_months(scope)
            ],
        ),
    ]
    if partner_id is None:
        tables.insert(
            1,
            lambda: Table(
                "league",
                "Partner league table (lowest conversion first)",
                [
                    "Partner",
                    "Referrals",
                    "First touch, median",
                    "Started care",
                    "Incomplete",
                    "Re-referral",
                ],
                [
                    [
                        r.partner,
                        r.referrals,
                        hours(r.first_touch_median_hours),
                        percent(r.conversion),
                        percent(r.incomplete),
                        percent(r.re_referral),
                    ]
                    for r in metrics.league_table(scope)
                ],
            ),
        )
    return tables


@dataclass(frozen=True)
class Trend:
    title: str
    labels: list[str]
    values: list[float | None]
    unit: str  # "h" or "%"


# The trend figures, headline first: (title, per-cohort values, unit).
TREND_FIGURES = (
    (
        "First touch, median (hours)",
        lambda c: [t.median_hours for t in metrics.first_touch_by_cohort(c)],
        "h",
    ),
    ("Started care (%)", lambda c: [_pct(x.rate) for x in metrics.conversion_by_cohort(c)], "%"),
    (
        "Incomplete referrals (%)",
        lambda c: [_pct(x.rate) for x in metrics.incomplete_by_cohort(c)],
        "%",
    ),
    (
        "Re-referral within 30 days (%)",
        lambda c: [_pct(x.rate) for x in metrics.re_referral_by_cohort(c)],
        "%",
    ),
)


def trends(
    period: Period, partner_id: int | None, figures: int = len(TREND_FIGURES)
) -> list[Trend]:
    """The last 12 weeks of the first `figures` headline figures."""
    return side_by_side(_trend_builders(period, partner_id, figures))


def _trend_builders(period: Period, partner_id: int | None, figures: int) -> list[Builder]:
    weeks = weeks_ending(period)
    cohorts = metrics.Cohorts.of([week.scope(partner_id) for week in weeks])
    labels = [week.first_day.strftime("%d %b") for week in weeks]
    return [
        lambda title=title, values=values, unit=unit: Trend(title, labels, values(cohorts), unit)
        for title, values, unit in TREND_FIGURES[:figures]
    ]


def trend_table(trend_list: list[Trend]) -> Table:
    labels = trend_list[0].labels if trend_list else []
    return Table(
        "trends",
        "Last 12 weeks",
        ["Week of", *[t.title for t in trend_list]],
        [[label, *[t.values[i] for t in trend_list]] for i, label in enumerate(labels)],
    )


def _pct(rate: float | None) -> float | None:
    return None if rate is None else round(rate * 100, 1)
