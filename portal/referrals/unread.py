"""Unread updates for partner users: partner-visible events they have not seen yet.

An event is news to a user when someone else made it after the user last opened the
referral (or, for a referral never opened, after the account was created), within the
last UNREAD_WINDOW. Every partner-visible event moves the referral's `updated_at`, so
only recently updated referrals need looking at: an index keeps the badge cheap
however long the partner's history is.
"""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import and_, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from portal.clock import utcnow
from portal.extensions import db
from portal.models import Referral, ReferralEvent, ReferralView, User


def _news_condition(user: User):
    seen = (
        select(ReferralView.seen_at)
        .where(ReferralView.user_id == user.id, ReferralView.referral_id == Referral.id)
        .scalar_subquery()
    )
    return and_(
        ReferralEvent.referral_id == Referral.id,
        ReferralEvent.partner_visible.is_(True),
        or_(ReferralEvent.actor_id.is_(None), ReferralEvent.actor_id != user.id),
        ReferralEvent.at > func.coalesce(seen, user.created_at),
    )


UNREAD_WINDOW = timedelta(days=90)


def unread_referral_count(user: User) -> int:
    """How many of the partner's referrals have news for this user (one query)."""
    return db.session.scalar(
        select(func.count(func.distinct(Referral.id)))
        .select_from(Referral)
        .join(ReferralEvent, _news_condition(user))
        .where(
            Referral.partner_id == user.partner_id,
            Referral.updated_at >= utcnow() - UNREAD_WINDOW,
        )
    )


def unread_references(user: User, referral_ids: list[int]) -> set[int]:
    """Which of these referrals have news for this user (one query)."""
    if not referral_ids:
        return set()
    return set(
        db.session.scalars(
            select(Referral.id)
            .join(ReferralEvent, _news_condition(user))
            .where(Referral.id.in_(referral_ids))
            .distinct()
        )
    )


def mark_seen(user: User, referral: Referral) -> None:
    """Remember that the user has seen everything on the referral up to now."""
    now = utcnow()
    updated = db.session.execute(
        update(ReferralView)
        .where(ReferralView.user_id == user.id, ReferralView.referral_id == referral.id)
        .values(seen_at=now)
        .execution_options(synchronize_session=False)
    )
    if updated.rowcount == 0:
        try:
            with db.session.begin_nested():
                db.session.add(ReferralView(user_id=user.id, referral_id=referral.id, seen_at=now))
        except IntegrityError:
            pass  # a parallel request of the same user recorded it first
