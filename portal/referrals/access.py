"""The one place that decides which referrals a user may see.

Every referral route loads its referral through `get_referral_or_404`, and every
list starts from `visible_referrals`, so the partner filter cannot be forgotten.
"""

from __future__ import annotations

from datetime import datetime

from flask import abort
from sqlalchemy import Select, literal, select
from sqlalchemy.orm import joinedload

from portal.extensions import db
from portal.models import Referral, ReferralView, User


def visible_referrals(user: User) -> Select[tuple[Referral]]:
    """A select of the referrals `user` may see: a partner user sees only its partner's."""
    statement = select(Referral)
    if user.is_partner_user:
        statement = statement.where(Referral.partner_id == user.partner_id)
    return statement


def find_referral(user: User, reference: str) -> Referral | None:
    return db.session.scalar(visible_referrals(user).where(Referral.reference == reference))


def get_referral_and_seen_or_404(user: User, reference: str) -> tuple[Referral, datetime | None]:
    """The referral with its service line, and when `user` (a partner user) last saw it
    (None: never, or staff), in one query; 404 as get_referral_or_404."""
    seen_at = (
        select(ReferralView.seen_at)
        .where(ReferralView.user_id == user.id, ReferralView.referral_id == Referral.id)
        .scalar_subquery()
    )
    row = db.session.execute(
        visible_referrals(user)
        .add_columns(seen_at if user.is_partner_user else literal(None))
        .options(joinedload(Referral.service_line))
        .where(Referral.reference == reference)
    ).first()
    if row is None:
        abort(404)
    return row[0], row[1]


def get_referral_or_404(user: User, reference: str) -> Referral:
    """The referral, or 404 whether it does not exist or belongs to another partner."""
    referral = find_referral(user, reference)
    if referral is None:
        abort(404)
    return referral
