"""How referring offices rated the referral process, per partner, for a scorecard period.

Two cohorts, each in the period's [start, end): the ratings first given in it (a changed
rating stays in the period it was first given, with its latest score), and the referrals
that reached an outcome in it, with how many of those the office has rated by now.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

from sqlalchemy import case, func, or_, select

from portal.extensions import db
from portal.models import Partner, ProcessRating, Referral
from portal.referrals.ratings import SCORES
from portal.scorecard.metrics import Scope


@dataclass(frozen=True)
class PartnerRatings:
    partner: str
    ratings: int
    mean_score: float | None  # to one decimal, halves up
    by_score: tuple[int, ...]  # how many ratings of each score, in SCORES order
    outcomes: int
    rated_outcomes: int

    @property
    def rated_share(self) -> float | None:
        return self.rated_outcomes / self.outcomes if self.outcomes else None


def mean_score(total: int, count: int) -> float | None:
    """`total / count` to one decimal, a half rounded up (3.25 -> 3.3), as decimals are
    written by hand rather than as binary floats round them."""
    if not count:
        return None
    mean = Decimal(total) / Decimal(count)
    return float(mean.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP))


def ratings_by_partner(scope: Scope) -> list[PartnerRatings]:
    """One row per partner with a rating given or an outcome reached in the period (of
    the scope's partner only, if it names one), by partner name. One query."""
    given = (
        select(
            ProcessRating.partner_id.label("partner_id"),
            func.count(ProcessRating.id).label("ratings"),
            func.sum(ProcessRating.score).label("total"),
            *(
                func.sum(case((ProcessRating.score == score, 1), else_=0)).label(f"score_{score}")
                for score in SCORES
            ),
        )
        .where(
            ProcessRating.created_at >= scope.start,
            ProcessRating.created_at < scope.end,
            *([ProcessRating.partner_id == scope.partner_id] if scope.partner_id else []),
        )
        .group_by(ProcessRating.partner_id)
        .subquery()
    )
    settled = (
        select(
            Referral.partner_id.label("partner_id"),
            func.count(Referral.id).label("outcomes"),
            func.count(ProcessRating.id).label("rated"),  # at most one rating per referral
        )
        .outerjoin(ProcessRating, ProcessRating.referral_id == Referral.id)
        .where(
            Referral.outcome_at >= scope.start,
            Referral.outcome_at < scope.end,
            *([Referral.partner_id == scope.partner_id] if scope.partner_id else []),
        )
        .group_by(Referral.partner_id)
        .subquery()
    )
    rows = db.session.execute(
        select(
            Partner.name,
            func.coalesce(given.c.ratings, 0),
            func.coalesce(given.c.total, 0),
            *(func.coalesce(given.c[f"score_{score}"], 0) for score in SCORES),
            func.coalesce(settled.c.outcomes, 0),
            func.coalesce(settled.c.rated, 0),
        )
        .outerjoin(given, given.c.partner_id == Partner.id)
        .outerjoin(settled, settled.c.partner_id == Partner.id)
        .where(or_(given.c.partner_id.is_not(None), settled.c.partner_id.is_not(None)))
        .order_by(Partner.name, Partner.id)
    )
    return [
        PartnerRatings(
            partner=name,
            ratings=int(count),
            mean_score=mean_score(int(total), int(count)),
            by_score=tuple(int(n) for n in by_score),
            outcomes=int(outcomes),
            rated_outcomes=int(rated),
        )
        for name, count, total, *by_score, outcomes, rated in rows
    ]
