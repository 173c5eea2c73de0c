"""Every scorecard figure, defined once, computed by aggregation in the database.

Each function answers one of PRODUCT.md's definitions for a `Scope` (a half-open UTC
period [start, end) and optionally one partner). Pages, CSV exports, the partner
dashboard and the weekly email all call these; none computes a figure itself.

A median is the usual one (the mean of the two middle values of an even count); a 90th
percentile is nearest-rank (the ceil(0.9 * n)-th smallest value). Both are computed by
`spread_by_group`, the same SQL on SQLite and PostgreSQL. Days, weeks and months are the
practice's, in its time zone: a `Scope`'s instants are local midnights, and grouping by
month (`partner_months`) cuts at local midnights too.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    case,
    exists,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.orm import aliased

from portal.clock import utcnow
from portal.extensions import db
from portal.localtime import practice_zone
from portal.models import (
    OutreachAttempt,
    Partner,
    PatientLink,
    Referral,
    ReferralEvent,
    SlaClock,
    Status,
)
from portal.scorecard.sql import elapsed_seconds

# Thirty of the practice's days: added to the local time of a submission, so across a
# clock change they last 719 or 721 hours (see re_referral_window_end).
RE_REFERRAL_WINDOW = timedelta(days=30)
HOUR = 3600.0


@dataclass(frozen=True)
class Scope:
    start: datetime
    end: datetime
    partner_id: int | None = None

    def submitted(self) -> ColumnElement[bool]:
        """Referrals submitted in the period (the cohort most figures are about)."""
        return and_(
            Referral.submitted_at >= self.start,
            Referral.submitted_at < self.end,
            *self._partner(),
        )

    def _partner(self) -> list[ColumnElement[bool]]:
        return [Referral.partner_id == self.partner_id] if self.partner_id else []


@dataclass(frozen=True)
class Cohorts:
    """Consecutive periods of one scope (the 12 weeks of a trend), computed together.

    Period i is [bounds[i], bounds[i + 1]); a referral belongs to the period its
    submission falls in. A figure for one scope is the same query with one cohort, so
    every figure still has exactly one definition.
    """

    bounds: tuple[datetime, ...]
    partner_id: int | None = None

    @classmethod
    def of(cls, scopes: list[Scope]) -> Cohorts:
        for earlier, later in zip(scopes, scopes[1:], strict=False):
            if earlier.end != later.start or earlier.partner_id != later.partner_id:
                raise ValueError("cohorts must be consecutive periods of one scope")
        return cls((*(s.start for s in scopes), scopes[-1].end), scopes[0].partner_id)

    @classmethod
    def months(cls, scope: Scope) -> tuple[Cohorts, list[date]]:
        """The scope cut at the practice's local month starts, and each part's month (its
        first day): a referral sent at 9 pm Eastern on 31 October is October's."""
        zone = practice_zone()
        month = scope.start.astimezone(zone).date().replace(day=1)
        firsts, bounds = [month], [scope.start]
        while True:
            month = (month + timedelta(days=32)).replace(day=1)
            starts_at = datetime.combine(month, time(0), tzinfo=zone).astimezone(UTC)
            if starts_at >= scope.end:
                break
            firsts.append(month)
            bounds.append(starts_at)
        return cls((*bounds, scope.end), scope.partner_id), firsts

    def __len__(self) -> int:
        return len(self.bounds) - 1

    def submitted(self) -> ColumnElement[bool]:
        return Scope(self.bounds[0], self.bounds[-1], self.partner_id).submitted()

    def index(self, moment: ColumnElement[datetime] = Referral.submitted_at) -> ColumnElement[int]:
        """Which period each referral's submission (or another moment) falls in (0-based)."""
        if len(self) == 1:
            return literal(0)
        whens = [(moment < bound, i) for i, bound in enumerate(self.bounds[1:-1])]
        return case(*whens, else_=len(self) - 1)

    def counts(self, *conditions: ColumnElement[bool], where=()) -> list[tuple[int, ...]]:
        """Per period: how many referrals, and how many meet each condition."""
        flags = [case((c, 1), else_=0).label(f"flag_{i}") for i, c in enumerate(conditions)]
        rows = (
            select(self.index().label("cohort"), *flags).where(self.submitted(), *where).subquery()
        )
        totals = {
            cohort: tuple(int(v or 0) for v in values)
            for cohort, *values in db.session.execute(
                select(
                    rows.c.cohort,
                    func.count(),
                    *(func.sum(rows.c[f"flag_{i}"]) for i in range(len(flags))),
                ).group_by(rows.c.cohort)
            )
        }
        return [totals.get(i, (0,) * (len(flags) + 1)) for i in range(len(self))]


@dataclass(frozen=True)
class Spread:
    """How a group's values spread: how many, the median and the 90th percentile."""

    n: int
    median: float | None
    p90: float | None


def _middle_ranks(n: ColumnElement[int]) -> tuple[ColumnElement[int], ColumnElement[int]]:
    """The 1-based ranks of the two middle values of n sorted values (the same rank twice
    when n is odd), in integer arithmetic so both databases agree exactly."""
    return (n + 1) // 2, n // 2 + 1


def _p90_rank(n: ColumnElement[int]) -> ColumnElement[int]:
    """Nearest rank: ceil(0.9 * n), as (9n + 9) div 10 so no float rounds it the wrong way
    (PostgreSQL's percentile_disc computes 0.9 * 70 as 63.000...01 and takes the 64th)."""
    return (9 * n + 9) // 10


def spread_by_group(values: Select) -> dict:
    """group -> Spread for a select of (group, value), in one query, the same SQL on
    SQLite and PostgreSQL.

    The median is the usual one: the middle value, or the mean of the two middle values
    when the count is even. The 90th percentile is nearest-rank: the ceil(0.9 * n)-th
    smallest value. Window functions rank each group's values; only the rows at those
    ranks come back (at most three per group). NULL values are not counted; groups with
    no values are absent.
    """
    subquery = values.subquery()
    group, value = subquery.c[0], subquery.c[1]
    ranked = (
        select(
            group.label("group_key"),
            value.label("value"),
            func.row_number().over(partition_by=group, order_by=value).label("rank"),
            func.count(value).over(partition_by=group).label("n"),
        )
        .where(value.is_not(None))
        .subquery()
    )
    rank, n = ranked.c.rank, ranked.c.n
    low, high = _middle_ranks(n)
    p90 = _p90_rank(n)
    rows = db.session.execute(
        select(
            ranked.c.group_key,
            n,
            ranked.c.value,
            case((rank == low, 1), else_=0) + case((rank == high, 1), else_=0),
            case((rank == p90, 1), else_=0),
        ).where(or_(rank == low, rank == high, rank == p90))
    )
    middles: dict = {}
    p90s: dict = {}
    counts: dict = {}
    for group_key, count, row_value, middle_weight, is_p90 in rows:
        counts[group_key] = count
        total, weight = middles.get(group_key, (0.0, 0))
        middles[group_key] = (total + float(row_value) * middle_weight, weight + middle_weight)
        if is_p90:
            p90s[group_key] = float(row_value)
    return {
        key: Spread(count, middles[key][0] / middles[key][1], p90s.get(key))
        for key, count in counts.items()
    }


def median_by_group(values: Select) -> dict:
    """group -> the median, for a select of (group, value) (see spread_by_group)."""
    return {key: found.median for key, found in spread_by_group(values).items()}


def _hours(seconds: float | None) -> float | None:
    # Not rounded: each output rounds once, from this (see report.display, report.in_file).
    return None if seconds is None else seconds / HOUR


def _rate(part: int, whole: int) -> float | None:
    return None if whole == 0 else part / whole


# --- The weekly scorecard's figures ----------------------------------------------------


@dataclass(frozen=True)
class FirstTouch:
    median_hours: float | None
    p90_hours: float | None
    touched: int


def first_touch_time(scope: Scope) -> FirstTouch:
    return first_touch_by_cohort(Cohorts.of([scope]))[0]


def first_touch_by_cohort(cohorts: Cohorts) -> list[FirstTouch]:
    """First touch minus submission, for referrals submitted in the period (touched ones)."""
    durations = select(
        cohorts.index(), elapsed_seconds(Referral.first_touch_at, Referral.submitted_at)
    ).where(cohorts.submitted(), Referral.first_touch_at.is_not(None))
    found = spread_by_group(durations)
    nothing = Spread(0, None, None)
    return [
        FirstTouch(_hours(spread.median), _hours(spread.p90), spread.n)
        for spread in (found.get(i, nothing) for i in range(len(cohorts)))
    ]


def first_touch_by_partner(scope: Scope) -> dict[int, FirstTouch]:
    """partner id -> the period's first-touch figures, for partners with touched
    referrals in it (one query)."""
    durations = select(
        Referral.partner_id, elapsed_seconds(Referral.first_touch_at, Referral.submitted_at)
    ).where(scope.submitted(), Referral.first_touch_at.is_not(None))
    return {
        partner_id: FirstTouch(_hours(spread.median), _hours(spread.p90), spread.n)
        for partner_id, spread in spread_by_group(durations).items()
    }


@dataclass(frozen=True)
class Conversion:
    completed: int
    submitted: int

    @property
    def rate(self) -> float | None:
        return _rate(self.completed, self.submitted)


def started_care_conversion(scope: Scope) -> Conversion:
    return conversion_by_cohort(Cohorts.of([scope]))[0]


def conversion_by_cohort(cohorts: Cohorts) -> list[Conversion]:
    """Completed / submitted, for the cohort submitted in the period."""
    return [
        Conversion(completed, submitted)
        for submitted, completed in cohorts.counts(Referral.status == Status.COMPLETED)
    ]


def median_cycle_time_hours(scope: Scope) -> float | None:
    return cycle_time_by_cohort(Cohorts.of([scope]))[0]


def cycle_time_by_cohort(cohorts: Cohorts) -> list[float | None]:
    """Median of submission to outcome, for referrals that reached an outcome in the
    period (whenever they were submitted): periods by outcome, not by submission."""
    first = Scope(cohorts.bounds[0], cohorts.bounds[-1], cohorts.partner_id)
    durations = select(
        cohorts.index(Referral.outcome_at),
        elapsed_seconds(Referral.outcome_at, Referral.submitted_at),
    ).where(Referral.outcome_at >= first.start, Referral.outcome_at < first.end, *first._partner())
    found = median_by_group(durations)
    return [_hours(found.get(i)) for i in range(len(cohorts))]


def _entered_needs_info() -> ColumnElement[bool]:
    return Referral.needs_info_at.is_not(None)


@dataclass(frozen=True)
class Share:
    part: int
    whole: int

    @property
    def rate(self) -> float | None:
        return _rate(self.part, self.whole)


def incomplete_rate(scope: Scope) -> Share:
    return incomplete_by_cohort(Cohorts.of([scope]))[0]


def incomplete_by_cohort(cohorts: Cohorts) -> list[Share]:
    """Share of referrals submitted in the period that entered needs_info at least once."""
    return [Share(part, whole) for whole, part in cohorts.counts(_entered_needs_info())]


def re_referral_window_end(submitted_at: datetime) -> datetime:
    """When a referral's 30 days end: the same time of day, 30 of the practice's days
    after its submission (sent at 9:00 on 20 October, until 9:00 on 19 November, though
    the clocks went back in between)."""
    local = submitted_at.astimezone(practice_zone())
    return (local + RE_REFERRAL_WINDOW).astimezone(UTC)  # wall-clock arithmetic


@dataclass(frozen=True)
class WindowLength:
    """The 30 days of referrals submitted from `starts` (until the next piece starts)
    last `length`: 30 x 24 hours, give or take the hour of a clock change."""

    starts: datetime
    length: timedelta


def window_lengths(first: datetime, last: datetime) -> tuple[WindowLength, ...]:
    """How long the 30 days last for submissions from `first` to `last`, piece by piece:
    the SQL form of `re_referral_window_end` (SQLite knows no time zones), one piece
    unless a clock change falls within, or 30 days after, the period."""
    return _window_lengths(first, last, practice_zone())


@lru_cache(maxsize=512)
def _window_lengths(first: datetime, last: datetime, _zone: ZoneInfo) -> tuple[WindowLength, ...]:
    def length(at: datetime) -> timedelta:
        return re_referral_window_end(at) - at

    pieces = [WindowLength(first, length(first))]
    day = first
    while day < last:
        # A zone changes its clocks at most once a day: look a day at a time, then
        # narrow a change down to the microsecond.
        low, high = day, min(day + timedelta(days=1), last)
        day = high
        if length(high) == pieces[-1].length:
            continue
        while high - low > timedelta(microseconds=1):
            middle = low + (high - low) / 2
            low, high = (middle, high) if length(middle) == pieces[-1].length else (low, middle)
        pieces.append(WindowLength(high, length(high)))
    return tuple(pieces)


def _window_seconds(
    submitted_at: ColumnElement[datetime], pieces: tuple[WindowLength, ...]
) -> ColumnElement[float]:
    """The length of each referral's 30 days in seconds, from its submission."""
    *earlier, latest = pieces
    if not earlier:
        return literal(latest.length.total_seconds())
    whens = [
        (submitted_at < following.starts, piece.length.total_seconds())
        for piece, following in zip(pieces, pieces[1:], strict=False)
    ]
    return case(*whens, else_=latest.length.total_seconds())


def re_referral_settles_at(scope: Scope) -> datetime:
    """When every referral submitted in the period has had its 30 days: from then on
    time changes its re-referral figures no more."""
    pieces = window_lengths(scope.start, scope.end)
    ends = [piece.starts for piece in pieces[1:]] + [scope.end]
    return max(end + piece.length for piece, end in zip(pieces, ends, strict=True))


def _followed_within_window(first: datetime, last: datetime) -> ColumnElement[bool]:
    """Another referral from the same partner came within 30 days of this one (sent in
    [first, last)): by the end of its 30th day, in the practice's time.

    The bound on the later referral only narrows the index range searched (nothing sent
    a day after the cohort's last 30 days can count, whatever the clocks did), so a
    partner who stopped referring costs no long scan.
    """
    later = aliased(Referral)
    return exists().where(
        later.partner_id == Referral.partner_id,
        later.submitted_at > Referral.submitted_at,  # so never the referral itself
        later.submitted_at <= last + RE_REFERRAL_WINDOW + timedelta(days=1),
        elapsed_seconds(later.submitted_at, Referral.submitted_at)
        <= _window_seconds(Referral.submitted_at, window_lengths(first, last)),
    )


def re_referral_rate(scope: Scope, now: datetime | None = None) -> Share:
    return re_referral_by_cohort(Cohorts.of([scope]), now)[0]


def _elapsed(
    first: datetime, last: datetime, now: datetime, after: datetime | None
) -> list[ColumnElement[bool]]:
    """Of the referrals sent in [first, last), those whose 30 days have fully elapsed by
    `now`; with `after`, only those that had not by `after` (what elapsed in between:
    stored figures plus these are the figures now, see snapshots.py). A range of
    submission times per piece of `window_lengths`, so the index on it serves."""
    pieces = window_lengths(first, last)
    ranges = []
    for piece, following in zip(pieces, [*pieces[1:], None], strict=True):
        conditions = [Referral.submitted_at <= now - piece.length]
        if after is not None:
            conditions.append(Referral.submitted_at > after - piece.length)
        if piece is not pieces[0]:
            conditions.append(Referral.submitted_at >= piece.starts)
        if following is not None:
            conditions.append(Referral.submitted_at < following.starts)
        ranges.append(and_(*conditions))
    return [or_(*ranges)] if len(ranges) > 1 else [ranges[0]]


def re_referral_by_cohort(
    cohorts: Cohorts, now: datetime | None = None, *, after: datetime | None = None
) -> list[Share]:
    """Of the period's referrals whose 30 days have fully elapsed, the share followed by
    another referral from the same partner within those 30 days."""
    first, last = cohorts.bounds[0], cohorts.bounds[-1]
    return [
        Share(part, whole)
        for whole, part in cohorts.counts(
            _followed_within_window(first, last),
            where=_elapsed(first, last, now or utcnow(), after),
        )
    ]


def re_referral_by_partner(
    scope: Scope, now: datetime | None = None, *, after: datetime | None = None
) -> dict[int, Share]:
    """partner id -> the period's re-referral share, for partners whose referrals of the
    period include some whose 30 days have elapsed (one grouped query)."""
    followed = _followed_within_window(scope.start, scope.end)
    return {
        partner_id: Share(int(part or 0), whole)
        for partner_id, whole, part in db.session.execute(
            select(
                Referral.partner_id,
                func.count(Referral.id),
                func.sum(case((followed, 1), else_=0)),
            )
            .where(scope.submitted(), *_elapsed(scope.start, scope.end, now or utcnow(), after))
            .group_by(Referral.partner_id)
        )
    }


NOT_RECORDED = "Not recorded yet"


def top_breach_reasons(scope: Scope, limit: int = 10) -> list[tuple[str, str, int]]:
    """(stage, reason, breaches) for clocks that breached in the period, most first."""
    reason = func.coalesce(SlaClock.breach_reason, NOT_RECORDED)
    statement = (
        select(SlaClock.stage, reason, func.count())
        .where(SlaClock.breached_at >= scope.start, SlaClock.breached_at < scope.end)
        .group_by(SlaClock.stage, reason)
        .order_by(func.count().desc(), SlaClock.stage, reason)
        .limit(limit)
    )
    if scope.partner_id:
        statement = statement.join(Referral, Referral.id == SlaClock.referral_id).where(
            *scope._partner()
        )
    return [(stage.label, text, count) for stage, text, count in db.session.execute(statement)]


FUNNEL_STEPS = ("Received", "Contact attempted", "Patient reached", "Scheduled", "Completed")


def _contact_attempted() -> ColumnElement[bool]:
    return or_(
        Referral.patient_reached_at.is_not(None),
        exists().where(OutreachAttempt.referral_id == Referral.id),
        exists().where(PatientLink.referral_id == Referral.id),
    )


def funnel(scope: Scope) -> list[tuple[str, int]]:
    """How far the period's referrals got: one row per step, each a subset of the last."""

    def count_if(condition):
        return func.coalesce(func.sum(case((condition, 1), else_=0)), 0)

    row = db.session.execute(
        select(
            func.count(Referral.id),
            count_if(_contact_attempted()),
            count_if(Referral.patient_reached_at.is_not(None)),
            count_if(Referral.scheduled_at.is_not(None)),
            count_if(Referral.status == Status.COMPLETED),
        ).where(scope.submitted())
    ).one()
    return list(zip(FUNNEL_STEPS, row, strict=True))


# Why referrals of the period did not start care, in the seed article's words.
NOT_CONVERTED = {
    "Eligibility mismatch": Referral.status == Status.DECLINED,
    "Missing records": and_(
        Referral.status == Status.WITHDRAWN,
        exists().where(
            ReferralEvent.referral_id == Referral.id,
            ReferralEvent.to_status == Status.WITHDRAWN,
            ReferralEvent.from_status == Status.NEEDS_INFO,
        ),
    ),
    "Patient choice": and_(
        Referral.status == Status.WITHDRAWN,
        ~exists().where(
            ReferralEvent.referral_id == Referral.id,
            ReferralEvent.to_status == Status.WITHDRAWN,
            ReferralEvent.from_status == Status.NEEDS_INFO,
        ),
    ),
    "Unreachable": Referral.status == Status.UNREACHABLE,
    "Redirected": Referral.status == Status.REDIRECTED,
}


def not_converted_reasons(scope: Scope) -> list[tuple[str, int]]:
    """Counts per reason for the period's referrals that reached a non-care outcome."""
    columns = [
        func.coalesce(func.sum(case((condition, 1), else_=0)), 0)
        for condition in NOT_CONVERTED.values()
    ]
    row = db.session.execute(select(*columns).where(scope.submitted())).one()
    return list(zip(NOT_CONVERTED, row, strict=True))


def outcome_mix(scope: Scope) -> list[tuple[str, int]]:
    """The period's referrals by the outcome class partners see."""
    rows = db.session.execute(
        select(Referral.status, func.count(Referral.id))
        .where(scope.submitted())
        .group_by(Referral.status)
    ).all()
    mix: dict[str, int] = {}
    for status, count in rows:
        label = Referral(status=status).outcome_class.label
        mix[label] = mix.get(label, 0) + count
    order = ["Started care", "Pending", "Redirected", "Not eligible", "Closed"]
    return [(label, mix.get(label, 0)) for label in order]


# --- Per partner --------------------------------------------------------------------


@dataclass(frozen=True)
class PartnerRow:
    partner_id: int
    partner: str
    referrals: int
    first_touch_median_hours: float | None
    conversion: float | None
    incomplete: float | None
    re_referral_share: Share

    @property
    def re_referral(self) -> float | None:
        return self.re_referral_share.rate


def league_table(scope: Scope, now: datetime | None = None) -> list[PartnerRow]:
    """Every partner's figures for the period, lowest conversion first (who needs help).

    The same definitions as the single figures above, grouped by partner: a handful of
    queries whatever the number of partners.
    """
    now = now or utcnow()
    period = Scope(scope.start, scope.end)  # all partners, grouped below
    counts = {
        partner_id: (total, completed, incomplete)
        for partner_id, total, completed, incomplete in db.session.execute(
            select(
                Referral.partner_id,
                func.count(Referral.id),
                func.sum(case((Referral.status == Status.COMPLETED, 1), else_=0)),
                func.sum(case((_entered_needs_info(), 1), else_=0)),
            )
            .where(period.submitted())
            .group_by(Referral.partner_id)
        )
    }
    re_referrals = re_referral_by_partner(period, now)
    touches = first_touch_by_partner(period)
    rows = []
    partners = db.session.execute(select(Partner.id, Partner.name).order_by(Partner.name))
    for partner_id, name in partners:
        if scope.partner_id and partner_id != scope.partner_id:
            continue
        total, completed, incomplete = counts.get(partner_id, (0, 0, 0))
        re_referral = re_referrals.get(partner_id, Share(0, 0))
        rows.append(
            PartnerRow(
                partner_id,
                name,
                total,
                touches[partner_id].median_hours if partner_id in touches else None,
                _rate(completed or 0, total),
                _rate(incomplete or 0, total),
                re_referral,
            )
        )
    return sorted(rows, key=lambda r: (r.referrals == 0, r.conversion is None, r.conversion or 0))


@dataclass(frozen=True)
class MonthRow:
    month: date  # its first day, in the practice's time zone
    partner: str
    referrals: int
    median_hours_to_first_contact: float | None
    scheduling_completion: float | None
    no_shows: int
    reschedules: int


# A booked visit moved: staff set a new time while it was booked, the patient picked
# another through a link, or staff cancelled it to book again. Notes and contact attempts
# recorded while a visit is booked leave it where it was.
RESCHEDULING_KINDS = ("schedule", "patient_answered", "cancel_appointment")


def _no_show() -> ColumnElement[bool]:
    """A missed visit: a move into no-show. Anything recorded while the referral stays
    there (a contact attempt, a note) is from no-show to no-show, and is not another."""
    return and_(
        ReferralEvent.to_status == Status.NO_SHOW,
        or_(ReferralEvent.from_status.is_(None), ReferralEvent.from_status != Status.NO_SHOW),
    )


def _reschedule() -> ColumnElement[bool]:
    return and_(
        ReferralEvent.from_status == Status.SCHEDULED,
        ReferralEvent.kind.in_(RESCHEDULING_KINDS),
    )


def partner_months(scope: Scope) -> list[MonthRow]:
    """Per partner and month of submission (the practice's months): volume, speed to
    first contact with the patient, share of accepted referrals that got scheduled,
    no-shows, reschedules."""
    months, firsts = Cohorts.months(scope)
    first_contact = (
        select(func.min(OutreachAttempt.at))
        .where(OutreachAttempt.referral_id == Referral.id)
        .scalar_subquery()
    )
    first_link = (
        select(func.min(PatientLink.created_at))
        .where(PatientLink.referral_id == Referral.id)
        .scalar_subquery()
    )
    # The earlier of the two: a link sent before anyone called is the first contact. (A
    # comparison with a NULL is not true, so the coalesce then takes whichever there is.)
    contact_at = case(
        (first_link < first_contact, first_link),
        else_=func.coalesce(first_contact, first_link),
    )

    def events(condition):
        return (
            select(func.count())
            .where(ReferralEvent.referral_id == Referral.id, condition)
            .scalar_subquery()
        )

    accepted = Referral.triaged_at.is_not(None) & Referral.status.not_in(
        [Status.DECLINED, Status.REDIRECTED]
    )
    base = (
        select(
            Referral.partner_id.label("partner_id"),
            months.index().label("month"),
            elapsed_seconds(contact_at, Referral.submitted_at).label("to_contact"),
            case((accepted, 1), else_=0).label("accepted"),
            case((accepted & Referral.scheduled_at.is_not(None), 1), else_=0).label("scheduled"),
            events(_no_show()).label("no_shows"),
            events(_reschedule()).label("reschedules"),
        ).where(months.submitted())
    ).subquery()
    medians = median_by_group(
        select(
            # One group per partner and month: the month index is below len(firsts).
            (base.c.partner_id * len(firsts) + base.c.month).label("key"),
            base.c.to_contact,
        )
    )
    totals = db.session.execute(
        select(
            base.c.partner_id,
            base.c.month,
            func.count(),
            func.sum(base.c.accepted),
            func.sum(base.c.scheduled),
            func.sum(base.c.no_shows),
            func.sum(base.c.reschedules),
        )
        .group_by(base.c.partner_id, base.c.month)
        .order_by(base.c.month, base.c.partner_id)
    ).all()
    names = dict(db.session.execute(select(Partner.id, Partner.name)).all())
    return [
        MonthRow(
            month=firsts[index],
            partner=names[partner_id],
            referrals=count,
            median_hours_to_first_contact=_hours(medians.get(partner_id * len(firsts) + index)),
            scheduling_completion=_rate(scheduled or 0, accepted_count or 0),
            no_shows=int(no_shows or 0),
            reschedules=int(reschedules or 0),
        )
        for partner_id, index, count, accepted_count, scheduled, no_shows, reschedules in totals
    ]
