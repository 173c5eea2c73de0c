"""The scorecard's tables, declared once: what each means, its typed columns, and how
its rows come from `metrics`.

A figure that appears in several tables (the first-touch median is in the summary, the
league table and the trends) is one `Column`, so it has one header, one unit and one
definition everywhere. The page formats the raw values (report.display), the CSV writes
them as numbers and dates (portal.exports), and the data dictionary lists these very
declarations. Meanings follow PRODUCT.md's definitions and say in words how each is
counted (the usual median, nearest-rank 90th percentiles, the practice's days and months).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from portal.exports import Column, Export, Kind
from portal.formatting import round_half_up
from portal.models.sla import STAGE_LABELS
from portal.scorecard import metrics, ratings

PERIOD = "the period"
SUBMITTED = f"referrals submitted in {PERIOD}"


def percent(rate: float | None) -> float | None:
    """A 0..1 share as a percentage from 0 to 100, unrounded: rows keep full precision and
    each output rounds once (`rounded_percent`, `HOURS_DECIMALS_IN_FILES`)."""
    return None if rate is None else rate * 100


# Hours are shown to one decimal on pages and in emails, and written to two in CSVs.
HOURS_DECIMALS_IN_FILES = 2


def rounded_percent(value: float) -> float:
    """A percentage as every output shows it (page, email, chart and CSV alike): to one
    decimal, but 0 or 100 only when it is exactly that, so a share that is neither none
    nor all never reads as one (199 of 200 is 99.5; 1999 of 2000 is 99.9, not 100.0)."""
    shown = round_half_up(value, 1)
    if shown >= 100 and value < 100:
        return 99.9
    if shown <= 0 < value:
        return 0.1
    return shown


def _hours(name: str, label: str, meaning: str) -> Column:
    return Column(
        name,
        label,
        Kind.NUMBER,
        f"{meaning} Wall-clock hours, to {HOURS_DECIMALS_IN_FILES} decimals.",
        "hours",
    )


def _percent(name: str, label: str, meaning: str) -> Column:
    return Column(
        name,
        label,
        Kind.NUMBER,
        meaning + " Percent, 0 to 100, to one decimal; 0 or 100 only when exactly so.",
        "percent",
    )


def _count(name: str, label: str, meaning: str, unit: str = "referrals") -> Column:
    return Column(name, label, Kind.INTEGER, meaning, unit)


def _text(name: str, label: str, meaning: str) -> Column:
    return Column(name, label, Kind.TEXT, meaning)


# --- Figures ----------------------------------------------------------------------------

FIRST_TOUCH_MEDIAN = _hours(
    "first_touch_median_hours",
    "Referral to first touch, median",
    f"Median of first touch by intake minus submission, for {SUBMITTED} that intake has "
    "touched: the middle value, or with an even count the mean of the two middle values. "
    "Empty when none.",
)
FIRST_TOUCH_P90 = _hours(
    "first_touch_p90_hours",
    "Referral to first touch, 90th percentile",
    f"90th percentile of first touch minus submission, for {SUBMITTED} that intake has "
    "touched, by nearest rank: sorted from fastest, the value at position 0.9 × the count, "
    "rounded up (of 16 values, the 15th). Empty when none.",
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
    f"Median of submission to outcome (the mean of the two middle values when the count is "
    f"even), for referrals that reached an outcome in {PERIOD}, whenever they were "
    "submitted. Empty when none did.",
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
    "referral from the same partner within 30 days. Days are the practice's: a referral's "
    "30 days end at the same time of day 30 days after it was sent, in the practice's time "
    "zone, whatever the clocks did in between. Empty until some 30 days have elapsed.",
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
    f"Of the {SUBMITTED}, how many were submitted at least 30 of the practice's days ago "
    "(the re-referral rate is over these).",
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
    # For rows stored for a closed period (snapshots.py): given the period, the stored
    # rows, when they were computed and now, the rows with the values time alone changes
    # (which referrals' 30 days have passed) brought up to now. None: nothing ages.
    refresh_aged: Callable[[metrics.Scope, list[tuple], datetime, datetime], list[tuple]] | None = (
        None
    )
    # Trailing values of each row that only the stored copy keeps (for refresh_aged);
    # the page and the CSV never see them.
    stored_only: int = 0


def summary_rows_by_cohort(cohorts: metrics.Cohorts) -> list[tuple]:
    """The SUMMARY row of each period of `cohorts` (a week's row is also its point on
    every trend), five queries however many periods."""
    touches = metrics.first_touch_by_cohort(cohorts)
    conversions = metrics.conversion_by_cohort(cohorts)
    cycle_times = metrics.cycle_time_by_cohort(cohorts)
    incompletes = metrics.incomplete_by_cohort(cohorts)
    re_referrals = metrics.re_referral_by_cohort(cohorts)
    return [
        (
            touch.median_hours,
            touch.p90_hours,
            touch.touched,
            percent(conversion.rate),
            conversion.completed,
            conversion.submitted,
            cycle_time,
            percent(incomplete.rate),
            incomplete.part,
            *re_referral_values(re_referral),
        )
        for touch, conversion, cycle_time, incomplete, re_referral in zip(
            touches, conversions, cycle_times, incompletes, re_referrals, strict=True
        )
    ]


def re_referral_values(share: metrics.Share) -> tuple:
    """The SUMMARY row's last three values: the only ones time alone changes (a
    referral's 30 days pass), so a stored row has them refreshed (snapshots.py)."""
    return percent(share.rate), share.part, share.whole


def _summary_rows(scope: metrics.Scope) -> list[tuple]:
    return summary_rows_by_cohort(metrics.Cohorts.of([scope]))


RE_REFERRAL_VALUES = 3  # the SUMMARY row ends with them


def _add(share: metrics.Share, part: int, whole: int) -> metrics.Share:
    return metrics.Share(share.part + part, share.whole + whole)


def _refresh_summary(
    scope: metrics.Scope, rows: list[tuple], computed_at: datetime, now: datetime
) -> list[tuple]:
    """The stored counts plus the referrals whose 30 days ended since they were stored
    (their followed-or-not can no longer change: it could only until their 30 days
    ended)."""
    (row,) = rows
    since = metrics.re_referral_by_cohort(metrics.Cohorts.of([scope]), now, after=computed_at)[0]
    return [(*row[:-RE_REFERRAL_VALUES], *re_referral_values(_add(since, row[-2], row[-1])))]


def _league_rows(scope: metrics.Scope) -> list[tuple]:
    """The league rows, each ending with what only a stored copy keeps (the partner's
    id and its re-referral counts, for _refresh_league)."""
    return [
        (
            r.partner,
            r.referrals,
            r.first_touch_median_hours,
            percent(r.conversion),
            percent(r.incomplete),
            percent(r.re_referral),
            r.partner_id,
            r.re_referral_share.part,
            r.re_referral_share.whole,
        )
        for r in metrics.league_table(scope)
    ]


def _refresh_league(
    scope: metrics.Scope, rows: list[tuple], computed_at: datetime, now: datetime
) -> list[tuple]:
    since = metrics.re_referral_by_partner(
        metrics.Scope(scope.start, scope.end), now, after=computed_at
    )
    refreshed = []
    for *shown, partner_id, part, whole in rows:
        share = _add(since.get(partner_id, metrics.Share(0, 0)), part, whole)
        refreshed.append((*shown[:-1], percent(share.rate), partner_id, share.part, share.whole))
    return refreshed


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
    refresh_aged=_refresh_summary,
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
    rows=_league_rows,
    stored_only=3,
    staff_only=True,
    all_partners_only=True,
    refresh_aged=_refresh_league,
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
            "The first day of the month of submission. Months are the practice's, in its "
            "time zone: a referral sent at 9 pm on the last evening of a month is that "
            "month's.",
        ),
        PARTNER,
        _count("referrals", "Referrals", "How many referrals the partner submitted that month."),
        _hours(
            "first_contact_median_hours",
            "Median hours to first contact",
            "Median of the first contact with the patient (the earlier of the first outreach "
            "attempt and the first patient link sent) minus submission; with an even count, "
            "the mean of the two middle values. Empty when none.",
        ),
        _percent(
            "scheduling_completion_percent",
            "Scheduling completion",
            "Of the referrals accepted (triaged and neither declined nor redirected), the "
            "share that got scheduled. Empty when none were accepted.",
        ),
        _count(
            "no_shows",
            "No-shows",
            "How many visits were missed: each move of a referral into no-show counts once. "
            "Contact attempts or notes recorded while it stays in no-show are not more; a "
            "visit booked again and missed again is a second.",
            "",
        ),
        _count(
            "reschedules",
            "Reschedules",
            "How many times a booked visit was moved: given a new time (by staff, or by the "
            "patient through a link) or cancelled to be booked again, each once. Booking "
            "after a cancellation or a no-show is not another.",
            "",
        ),
    ),
    rows=lambda scope: [
        (
            r.month,
            r.partner,
            r.referrals,
            r.median_hours_to_first_contact,
            percent(r.scheduling_completion),
            r.no_shows,
            r.reschedules,
        )
        for r in metrics.partner_months(scope)
    ],
    staff_only=True,
)

# The trend figures, headline first. Each is a SUMMARY column: a week's point on a trend
# is that week's SUMMARY value.
TREND_FIGURES: tuple[Column, ...] = (FIRST_TOUCH_MEDIAN, STARTED_CARE, INCOMPLETE, RE_REFERRAL)

TRENDS = ScorecardTable(
    "trends",
    "Last 12 weeks",
    f"The headline figures week by week, for the 12 weeks up to the one {PERIOD} ends in.",
    (WEEK_STARTING, *TREND_FIGURES),
    staff_only=True,
)

RATED = "ratings first given in the period"
PROCESS_RATINGS = ScorecardTable(
    "process_ratings",
    "Process ratings by partner",
    "How each referring office rated the referral process (1 poor to 5 excellent, one "
    "rating per referral, offered once the referral reached an outcome): its ratings "
    f"first given in {PERIOD}, and how many of its referrals that reached an outcome in "
    f"{PERIOD} it has rated so far. Partners with neither are left out.",
    (
        PARTNER,
        _count(
            "ratings",
            "Ratings",
            f"How many of the partner's referrals it first rated in {PERIOD}. A rating "
            "changed later stays in the period it was first given, with its latest score.",
            "ratings",
        ),
        Column(
            "mean_score",
            "Mean score",
            Kind.NUMBER,
            f"The mean score of the {RATED}, 1 to 5, to one decimal (a half rounds up). "
            "Empty when none.",
            "score",
        ),
        *(
            _count(
                f"score_{score}_ratings",
                f"Rated {score}",
                f"Of the {RATED}, how many scored {score}.",
                "ratings",
            )
            for score in ratings.SCORES
        ),
        _count(
            "outcome_referrals",
            "Outcomes",
            f"How many of the partner's referrals reached an outcome in {PERIOD}, whenever "
            "they were submitted: started care, redirected, not eligible or closed.",
        ),
        _count(
            "rated_outcome_referrals",
            "Outcomes rated",
            "Of those outcomes, how many the partner has rated by now, whenever it did.",
        ),
        _percent(
            "rated_outcome_percent",
            "Outcomes rated, share",
            "Outcomes rated divided by outcomes. Empty when there were none.",
        ),
    ),
    rows=lambda scope: [
        (
            r.partner,
            r.ratings,
            r.mean_score,
            *r.by_score,
            r.outcomes,
            r.rated_outcomes,
            percent(r.rated_share),
        )
        for r in ratings.ratings_by_partner(scope)
    ],
    staff_only=True,
)

# In the order the staff page shows them.
TABLES = (
    SUMMARY,
    LEAGUE,
    FUNNEL,
    OUTCOMES,
    NOT_CONVERTED,
    BREACHES,
    MONTHS,
    PROCESS_RATINGS,
    TRENDS,
)


def tables_for(*, staff: bool, partner_id: int | None) -> list[ScorecardTable]:
    """The tables a page offers: a partner's dashboard has no staff-only tables, and the
    league table needs every partner."""
    return [
        table
        for table in TABLES
        if (staff or not table.staff_only)
        and not (table.all_partners_only and (partner_id is not None or not staff))
    ]
