"""Unread updates for partner users: referrals with news they have not seen yet.

A referral has news for a user when its last partner-visible update (`updated_at`:
every partner-visible event moves it) is later than when the user last saw it, or,
for a referral never opened, later than the account's creation, within the last
UNREAD_WINDOW. A partner user who records an event has seen it (record_event marks
it), so their own submissions and answers are never news to them.

No event rows are read: the badge walks the partner's recently updated referrals on
an index and stops at UNREAD_CAP, so it costs the same whatever the history.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, bindparam, exists, func, select

from portal.clock import utcnow
from portal.database import upsert_insert
from portal.extensions import db
from portal.models import Referral, ReferralView, User

UNREAD_WINDOW = timedelta(days=90)
# The badge shows "99+" beyond this: a count nobody reads exactly is not worth a scan.
UNREAD_CAP = 100


def _news_since(user: User) -> datetime:
    return max(utcnow() - UNREAD_WINDOW, user.created_at)


def _news(user_id: Any, partner_id: Any, since: Any) -> ColumnElement[bool]:
    """The rule, for one referral row: the user's partner's, updated within the window,
    and not seen by this user since (one probe of the user's view of it)."""
    seen_since_updated = exists().where(
        ReferralView.user_id == user_id,
        ReferralView.referral_id == Referral.id,
        ReferralView.seen_at >= Referral.updated_at,
    )
    return and_(
        Referral.partner_id == partner_id,
        Referral.updated_at > since,
        ~seen_since_updated,
    )


@cache
def _unread_count_statement() -> Select:
    """The badge's count for the bound user, partner and `since`: built once, run on
    every partner page (building it cost as much as running it on SQLite)."""
    # Newest first: the order of the partner's update index, which the read then follows
    # (without it, PostgreSQL may read the table hoping to meet 100 matches early).
    news = (
        select(Referral.id)
        .where(
            _news(
                bindparam("user_id"),
                bindparam("partner_id"),
                bindparam("since", type_=Referral.updated_at.type),
            )
        )
        .order_by(Referral.updated_at.desc())
        .limit(UNREAD_CAP)
        .subquery()
    )
    return select(func.count()).select_from(news)


def unread_referral_count(user: User) -> int:
    """How many of the partner's referrals have news for this user, up to UNREAD_CAP."""
    parameters = {"user_id": user.id, "partner_id": user.partner_id, "since": _news_since(user)}
    return db.session.scalar(_unread_count_statement(), parameters)


def has_news(user: User) -> ColumnElement[bool]:
    """Whether a referral has news for this user, as a column beside a select of
    referrals (the partner's list marks its rows with it), not a statement of its own."""
    return _news(user.id, user.partner_id, _news_since(user)).label("has_news")


UNKNOWN = object()


def mark_seen(user: User, referral: Referral, seen_at: datetime | None | object = UNKNOWN) -> None:
    """Remember that the user has seen the referral as this request read it.

    Seen up to its `updated_at` as read, not up to now: an update another request
    commits while this page is built is not on the page, and stays news. `seen_at`,
    when the caller read it with the referral: when the user last saw it (None: never).
    Nothing is written when that already covers the referral's last update, so opening
    a referral with no news costs no write; nor does a request that read an older state
    than one the user has already seen.
    """
    shown = referral.updated_at
    if isinstance(seen_at, datetime) and seen_at >= shown:
        return
    # One statement, whatever another request of the same user does meanwhile: the row
    # is made, or moved forward, never back (two tabs opened at once keep the later).
    statement = upsert_insert(db.session, ReferralView).values(
        user_id=user.id, referral_id=referral.id, seen_at=shown
    )
    db.session.execute(
        statement.on_conflict_do_update(
            index_elements=[ReferralView.user_id, ReferralView.referral_id],
            set_={"seen_at": statement.excluded.seen_at},
            where=ReferralView.seen_at < statement.excluded.seen_at,
        )
    )
