"""The one place that decides which referrals a user may see.

Every referral route loads its referral through `get_referral_or_404`, and every
list starts from `visible_referrals`, so the partner filter cannot be forgotten.
"""

from __future__ import annotations

from flask import abort
from sqlalchemy import Select, select

from portal.extensions import db
from portal.models import Referral, User


def visible_referrals(user: User) -> Select[tuple[Referral]]:
    """A select of the referrals `user` may see: a partner user sees only its partner's."""
    statement = select(Referral)
    if user.is_partner_user:
        statement = statement.where(Referral.partner_id == user.partner_id)
    return statement


def find_referral(user: User, reference: str) -> Referral | None:
    return db.session.scalar(visible_referrals(user).where(Referral.reference == reference))


def get_referral_or_404(user: User, reference: str) -> Referral:
    """The referral, or 404 whether it does not exist or belongs to another partner."""
    referral = find_referral(user, reference)
    if referral is None:
        abort(404)
    return referral
