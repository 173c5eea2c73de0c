"""Two ways one referral arrives twice, and what stops each.

- The same form sent again (a double click, or Back and send): the form's submission
  token is made when the form is opened and kept in its URL (`?form=...`), so the
  first referral is found again, by a POST and by Back alike.
- The same patient sent again by the same office (retyped after Back, or by a
  colleague): an open referral from that office for the same name and date of birth,
  sent within DUPLICATE_WINDOW_DAYS, is shown as a warning; sending anyway is allowed
  and recorded. Only the office's own referrals are compared, so the warning never
  tells an office about another office's patients.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from datetime import date, timedelta

from flask import current_app
from sqlalchemy import select
from sqlalchemy.orm import joinedload

from portal.clock import utcnow
from portal.extensions import db
from portal.formatting import format_moment
from portal.models import OPEN_STATUSES, Partner, Referral, ReferralEvent, User
from portal.referrals.access import visible_referrals
from portal.referrals.workflow import record_event

# What new_submission_token makes (32 characters), with room for older forms' tokens.
SUBMISSION_TOKEN = re.compile(r"[A-Za-z0-9_-]{16,64}")


def new_submission_token() -> str:
    """A random key for one opened form; it says nothing about the patient."""
    return secrets.token_urlsafe(24)


def is_submission_token(value: str) -> bool:
    return SUBMISSION_TOKEN.fullmatch(value) is not None


def submitted_with_token(user: User, token: str) -> Referral | None:
    """The referral `user` may see that was sent from the form with this token."""
    return db.session.scalars(
        visible_referrals(user).where(Referral.submission_token == token).limit(1)
    ).first()


class PossibleDuplicate(Exception):
    """The office already has an open referral for this patient; it must confirm."""

    def __init__(self, earlier: Referral) -> None:
        super().__init__(f"possible duplicate of {earlier.reference}")
        self.earlier = earlier


def _comparable_name(name: str) -> str:
    # Case, accents written two ways and stray spaces do not make another patient.
    return " ".join(unicodedata.normalize("NFKC", name).casefold().split())


def find_possible_duplicate(
    partner: Partner, first_name: str, last_name: str, date_of_birth: date
) -> Referral | None:
    """The office's newest open referral for this patient within the window, or None.

    One SELECT: the office's open referrals for the date of birth in the window (a
    handful at most); names are compared here, so case folding is the same on SQLite
    and PostgreSQL whatever the database's collation.
    """
    since = utcnow() - timedelta(days=current_app.config["DUPLICATE_WINDOW_DAYS"])
    candidates = db.session.scalars(
        select(Referral)
        .where(
            Referral.partner_id == partner.id,
            Referral.submitted_at >= since,
            Referral.patient_date_of_birth == date_of_birth,
            Referral.status.in_(OPEN_STATUSES),
        )
        .options(joinedload(Referral.service_line))
        .order_by(Referral.submitted_at.desc(), Referral.id.desc())
    )
    wanted = (_comparable_name(first_name), _comparable_name(last_name))
    return next(
        (
            referral
            for referral in candidates
            if (
                _comparable_name(referral.patient_first_name),
                _comparable_name(referral.patient_last_name),
            )
            == wanted
        ),
        None,
    )


def record_possible_duplicate(referral: Referral, earlier: Referral, actor: User) -> ReferralEvent:
    """Mark a referral sent anyway despite the warning, and say so on its timeline."""
    referral.possible_duplicate_of_id = earlier.id
    return record_event(
        referral,
        kind="possible_duplicate",
        actor=actor,
        summary=(
            f"Submitted as a new referral although {earlier.reference} for the same "
            f"patient was sent on {format_moment(earlier.submitted_at)}"
        ),
        partner_visible=True,
    )
