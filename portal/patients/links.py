"""Signed patient links: an itsdangerous token naming a database row.

The token is signed with a salt per purpose and expires; the row makes the link
single-use, revocable and lockable. Old secret keys in SECRET_KEY_FALLBACKS keep
verifying during a key rotation (the newest key signs).
"""

from __future__ import annotations

import enum
import secrets

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import select

from portal.clock import utcnow
from portal.extensions import db
from portal.models import PatientLink

NEXT_STEP = "patient-next-step"


class LinkProblem(enum.StrEnum):
    INVALID = "invalid"
    EXPIRED = "expired"
    USED = "used"
    REVOKED = "revoked"
    LOCKED = "locked"


class LinkRefused(Exception):
    def __init__(self, problem: LinkProblem, link: PatientLink | None = None) -> None:
        super().__init__(problem.value)
        self.problem = problem
        self.link = link


def serializer(purpose: str) -> URLSafeTimedSerializer:
    config = current_app.config
    return URLSafeTimedSerializer(
        [*config["SECRET_KEY_FALLBACKS"], config["SECRET_KEY"]], salt=f"portal.{purpose}"
    )


def new_public_id() -> str:
    return secrets.token_hex(16)


def sign(link: PatientLink) -> str:
    return serializer(link.purpose).dumps(link.public_id)


def resolve(token: str, purpose: str = NEXT_STEP, *, allow_used: bool = False) -> PatientLink:
    """The link behind `token`, or LinkRefused saying why it cannot be used. Reads only."""
    max_age = current_app.config["PATIENT_LINK_MAX_AGE"].total_seconds()
    try:
        public_id = serializer(purpose).loads(token, max_age=max_age)
    except SignatureExpired:
        raise LinkRefused(LinkProblem.EXPIRED) from None
    except BadSignature:
        raise LinkRefused(LinkProblem.INVALID) from None
    link = db.session.scalar(select(PatientLink).where(PatientLink.public_id == public_id))
    if link is None or link.purpose != purpose:
        raise LinkRefused(LinkProblem.INVALID)
    if link.revoked_at is not None:
        raise LinkRefused(LinkProblem.REVOKED, link)
    if link.used_at is not None and not allow_used:
        raise LinkRefused(LinkProblem.USED, link)
    if link.locked_at is not None:
        raise LinkRefused(LinkProblem.LOCKED, link)
    if link.expires_at <= utcnow():
        raise LinkRefused(LinkProblem.EXPIRED, link)
    return link
