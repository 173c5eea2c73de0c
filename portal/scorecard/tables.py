"""The scorecard's tables, declared once: what each means, its typed columns, and how
its rows come from `metrics`.

A figure that appears in several tables (the first-touch median is in the summary, the
league table and the trends) is one `Column`, so it has one header, one unit and one
definition everywhere. The page formats the raw values (report.display), the CSV writes
them as numbers and dates (portal.exports), and the data dictionary lists these very
declarations. Meanings follow PRODUCT.md's definitions and say where the code's
counting is more specific (nearest-rank medians, UTC months).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from portal.exports import Column, Export, Kind
from portal.models.sla import STAGE_LABELS
from portal.scorecard import metrics

PERIOD = "the period"
SUBMITTED = f"referrals submitted in {PERIOD}"


def percent(rate: float | None) -> float | None:
    """A 0..1 share as a percentage from 0 to 100, to one decimal."""
    return None if rate is None else round(rate * 100, 1)


def _hours(name: str, label: str, meaning: str) -> Column:
    return Column(name, label, Kind.NUMBER, meaning + " Wall-clock hours, to 2 decimals.", "hours")


def _percent(name: str, label: str, meaning: str) -> Column:
    return Column(name, label, Kind.NUMBER, meaning + " Percent, 0 to 100.", "percent")


def _count(name: str, label: str, meaning: str, unit: str = "referrals") -> Column:
    return Column(name, label, Kind.INTEGER, meaning, unit)


def _text(name: str, label: str, meaning: str) -> Column:
    return Column(name, label, Kind.TEXT, meaning)


# --- Figures ----------------------------------------------------------------------------

FIRST_TOUCH_MEDIAN = _hours(
    "first_touch_median_hours",
    "Referral to first touch, median",
    f"Median of first touch by intake minus submission, for {SUBMITTED} that intake has "
    "touched (nearest rank: with an even count, the lower middle value). Empty when none.",
)
FIRST_TOUCH_P90 = _hours(
    "first_touch_p90_hours",
    "Referral to first touch, 90th percentile",
    f"90th percentile (nearest rank) of first touch minus submission, for {SUBMITTED} that "
    "intake has touched. Empty when none.",
)
TOUCHED = _count(
    "touched_referrals",
    "Referrals touched",
    f"Of the {SUBMITTED}, how many intake has touched: the first-touch figures are over these.",
)
SUBMITTED_REFERRALS = _count(
    "submitted_referrals", "Referrals submitted", f"How many referrals were submitted in {PERIOD}."
)
STARTED_CARE = _percent(
    "started_care_percent",
    "Referral to started care",
    f"Completed (first visit done) divided by {SUBMITTED}. Empty when none were submitted.",
)
STARTED_CARE_REFERRALS = _count(
    "started_care_referrals",
    "Referrals that started care",
    f"Of the {SUBMITTED}, how many are completed (first visit done).",
)
CYCLE_TIME_MEDIAN = _hours(
    "cycle_time_median_hours",
    "Median referral cycle time",
    f"Median (nearest rank) of submission to outcome, for referrals that reached an outcome "
    f"in {PERIOD}, whenever they were submitted. Empty when none did.",
)
INCOMPLETE = _percent(
    "incomplete_percent",
    "Incomplete referral rate",
    f"Share of {SUBMITTED} that entered needs information at least once. Empty when none "
    "were submitted.",
)
INCOMPLETE_REFERRALS = _count(
    "incomplete_referrals",
    "Referrals that needed information",
    f"Of the {SUBMITTED}, how many entered needs information at least once.",
)
RE_REFERRAL = _percent(
    "re_referral_percent",
    "Partner re-referral within 30 days",
    f"Of the {SUBMITTED} whose 30 days have fully elapsed, the share followed by another "
    "referral from the same partner within 30 days. Empty until some 30 days have elapsed.",
)
RE_REFERRAL_FOLLOWED = _count(
    "followed_within_30_days_referrals",
    "Referrals followed within 30 days",
    "Of the referrals whose 30 days have elapsed, how many were followed by another "
    "referral from the same partner within 30 days.",
)
RE_REFERRAL_ELAPSED = _count(
    "thirty_days_elapsed_referrals",
    "Referrals whose 30 days have passed",
    f"Of the {SUBMITTED}, how many were submitted at least 30 days ago (the re-referral "
    "rate is over these).",
)
REFERRALS = _count("referrals", "Referrals", f"How many of the {SUBMITTED}.")
PARTNER = _text("partner", "Partner", "The referring office's name.")
WEEK_STARTING = Column(
    "week_starting",
    "Week starting",
    Kind.DATE,
    "The Monday the week starts on, in the practice's time zone; the figures on the row "
    "are for the referrals submitted that week.",
)


@dataclass(frozen=True)
class ScorecardTable(Export):
    """A scorecard table: an export, plus where it is offered and how its rows are made."""

    # Rows for a scope, each a tuple in column order; None for the trends (report.py
    # builds those from the charts' figures rather than query them twice).
    rows: Callable[[metrics.Scope], list[tuple]] | None = None
    staff_only: bool = False  # not on a partner's dashboard
    all_partners_only: bool = False  # only when the scorecard is not narrowed to a partner
    figures: bool = False  # one row, shown on the page as heading: value lines


def _summary_rows(scope: metrics.Scope) -> list[tuple]:
    touch = metrics.first_touch_time(scope)
    conversion = metrics.started_care_conversion(scope)
    incomplete = metrics.incomplete_rate(scope)
    re_referral = metrics.re_referral_rate(scope)
    return [
        (
            touch.median_hours,
            touch.p90_hours,
            touch.touched,
            percent(conversion.rate),
            conversion.completed,
            conversion.submitted,
            metrics.median_cycle_time_hours(scope),
            percent(incomplete.rate),
            incomplete.part,
            percent(re_referral.rate),
            re_referral.part,
            re_referral.whole,
        )
    ]


SUMMARY = ScorecardTable(
    "summary",
    "This period",
    f"The headline figures for {PERIOD}: one row.",
    (
        FIRST_TOUCH_MEDIAN,
        FIRST_TOUCH_P90,
        TOUCHED,
        STARTED_CARE,
        STARTED_CARE_REFERRALS,
        SUBMITTED_REFERRALS,
        CYCLE_TIME_MEDIAN,
        INCOMPLETE,
        INCOMPLETE_REFERRALS,
        RE_REFERRAL,
        RE_REFERRAL_FOLLOWED,
        RE_REFERRAL_ELAPSED,
    ),
    rows=_summary_rows,
    figures=True,
)

LEAGUE = ScorecardTable(
    "league",
    "Partner league table (lowest conversion first)",
    f"Every partner's headline figures for {PERIOD}, lowest started-care rate first: who "
    "needs help. Partners with no referrals come last.",
    (
        PARTNER,
        SUBMITTED_REFERRALS,
        FIRST_TOUCH_MEDIAN,
        STARTED_CARE,
        INCOMPLETE,
        RE_REFERRAL,
    ),
    rows=lambda scope: [
        (
            r.partner,
            r.referrals,
            r.first_touch_median_hours,
            percent(r.conversion),
            percent(r.incomplete),
            percent(r.re_referral),
        )
        for r in metrics.league_table(scope)
    ],
    staff_only=True,
    all_partners_only=True,
)

FUNNEL = ScorecardTable(
    "funnel",
    "Funnel",
    f"How far the {SUBMITTED} got; each step counts a subset of the step before.",
    (
        _text(
            "step",
            "Step",
            "Received; contact attempted (a call, message or patient link); patient reached; "
            "scheduled; completed (started care).",
        ),
        _count("referrals", "Referrals", f"How many of the {SUBMITTED} reached the step."),
    ),
    rows=metrics.funnel,
)

OUTCOMES = ScorecardTable(
    "outcomes",
    "Outcome mix",
    f"The {SUBMITTED} by the outcome class partners see.",
    (
        _text(
            "outcome",
            "Outcome",
            "Started care (first visit done), pending (still on its way, no-shows "
            "included), redirected, not eligible (declined), or closed (withdrawn by the "
            "partner, or the patient could not be reached).",
        ),
        REFERRALS,
    ),
    rows=metrics.outcome_mix,
)

NOT_CONVERTED = ScorecardTable(
    "not_converted",
    "Why referrals did not start care",
    f"The {SUBMITTED} that reached an outcome other than care, by reason.",
    (
        _text(
            "reason",
            "Reason",
            "Eligibility mismatch (declined), missing records (withdrawn while information "
            "was asked for), patient choice (withdrawn otherwise), unreachable, redirected.",
        ),
        REFERRALS,
    ),
    rows=metrics.not_converted_reasons,
)

BREACHES = ScorecardTable(
    "breaches",
    "Top breach reasons by stage",
    f"SLA clocks that breached in {PERIOD}, by stage and the reason staff recorded; the "
    "ten most frequent.",
    (
        _text(
            "stage",
            "Stage",
            f"The SLA clock that breached: {', '.join(STAGE_LABELS.values())}.",
        ),
        _text(
            "reason",
            "Reason",
            f"The breach reason staff recorded, as they wrote it; “{metrics.NOT_RECORDED}” "
            "until someone does.",
        ),
        _count("breaches", "Breaches", "How many clocks breached for this stage and reason.", ""),
    ),
    rows=metrics.top_breach_reasons,
    staff_only=True,
)

MONTHS = ScorecardTable(
    "months",
    "Per partner and month",
    f"For the {SUBMITTED}, per partner and month of submission.",
    (
        Column(
            "month_starting",
            "Month starting",
            Kind.DATE,
            "The first day of the month of submission (months are counted in UTC).",
        ),
        PARTNER,
        _count("referrals", "Referrals", "How many referrals the partner submitted that month."),
        _hours(
            "first_contact_median_hours",
            "Median hours to first contact",
            "Median (nearest rank) of the first contact with the patient (an outreach attempt, "
            "or else the first patient link) minus submission. Empty when none.",
        ),
        _percent(
            "scheduling_completion_percent",
            "Scheduling completion",
            "Of the referrals accepted (triaged and neither declined nor redirected), the "
            "share that got scheduled. Empty when none were accepted.",
        ),
        _count("no_shows", "No-shows", "How many times a patient did not come to a visit.", ""),
        _count(
            "reschedules",
            "Reschedules",
            "How many times a booked visit was moved to a new time, or cancelled to be "
            "booked again.",
            "",
        ),
    ),
    rows=lambda scope: [
        (
            date.fromisoformat(f"{r.month}-01"),
            r.partner,
            r.referrals,
            r.median_hours_to_first_contact,
            percent(r.scheduling_completion),
            int(r.no_shows),
            int(r.reschedules),
        )
        for r in metrics.partner_months(scope)
    ],
    staff_only=True,
)

# The trend figures, headline first: each a column and its per-week values.
TREND_FIGURES: tuple[tuple[Column, Callable[[metrics.Cohorts], list]], ...] = (
    (FIRST_TOUCH_MEDIAN, lambda c: [t.median_hours for t in metrics.first_touch_by_cohort(c)]),
    (STARTED_CARE, lambda c: [percent(x.rate) for x in metrics.conversion_by_cohort(c)]),
    (INCOMPLETE, lambda c: [percent(x.rate) for x in metrics.incomplete_by_cohort(c)]),
    (RE_REFERRAL, lambda c: [percent(x.rate) for x in metrics.re_referral_by_cohort(c)]),
)

TRENDS = ScorecardTable(
    "trends",
    "Last 12 weeks",
    f"The headline figures week by week, for the 12 weeks up to the one {PERIOD} ends in.",
    (WEEK_STARTING, *(column for column, _values in TREND_FIGURES)),
    staff_only=True,
)

# In the order the staff page shows them.
TABLES = (SUMMARY, LEAGUE, FUNNEL, OUTCOMES, NOT_CONVERTED, BREACHES, MONTHS, TRENDS)


def tables_for(*, staff: bool, partner_id: int | None) -> list[ScorecardTable]:
    """The tables a page offers: a partner's dashboard has no staff-only tables, and the
    league table needs every partner."""
    return [
        table
        for table in TABLES
        if (staff or not table.staff_only)
        and not (table.all_partners_only and (partner_id is not None or not staff))
    ]
