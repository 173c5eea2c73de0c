"""Signed patient links: an itsdangerous-signed token naming a database row.

The token is the row's random `public_id` (96 bits) and an HMAC-SHA256 of it, salted
per purpose and cut to 80 bits: 31 characters, short enough that a text message with
its link fits one segment. The row makes the link expire and single-use, revocable and
lockable. Old secret keys in SECRET_KEY_FALLBACKS keep verifying during a key rotation
(the newest key signs). Links sent before tokens were shortened (a timed serializer's
three-part token) still verify until they expire.
"""

from __future__ import annotations

import enum
import hashlib
import secrets

from flask import current_app
from itsdangerous import (
    BadSignature,
    HMACAlgorithm,
    SignatureExpired,
    Signer,
    URLSafeTimedSerializer,
)
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


SIGNATURE_BYTES = 10
PUBLIC_ID_BYTES = 12


class TruncatedHMAC(HMACAlgorithm):
    """HMAC-SHA256 cut to SIGNATURE_BYTES: 80 bits against a forger who must also find
    one of the live 96-bit ids, through a page that locks after five wrong birth dates."""

    def __init__(self) -> None:
        super().__init__(hashlib.sha256)

    def get_signature(self, key: bytes, value: bytes) -> bytes:
        return super().get_signature(key, value)[:SIGNATURE_BYTES]


def _keys() -> list[str]:
    config = current_app.config
    return [*config["SECRET_KEY_FALLBACKS"], config["SECRET_KEY"]]


def signer(purpose: str) -> Signer:
    return Signer(_keys(), salt=f"portal.{purpose}", algorithm=TruncatedHMAC())


def serializer(purpose: str) -> URLSafeTimedSerializer:
    """The long tokens links were signed with before: still read, never written."""
    return URLSafeTimedSerializer(_keys(), salt=f"portal.{purpose}")


def new_public_id() -> str:
    return secrets.token_urlsafe(PUBLIC_ID_BYTES)


def sign(link: PatientLink) -> str:
    return signer(link.purpose).sign(link.public_id).decode()


def _public_id(token: str, purpose: str) -> str:
    if token.count(".") == 2:
        max_age = current_app.config["PATIENT_LINK_MAX_AGE"].total_seconds()
        return serializer(purpose).loads(token, max_age=max_age)
    return signer(purpose).unsign(token).decode()


def resolve(token: str, purpose: str = NEXT_STEP, *, allow_used: bool = False) -> PatientLink:
    """The link behind `token`, or LinkRefused saying why it cannot be used. Reads only."""
    try:
        public_id = _public_id(token, purpose)
    except SignatureExpired:
        raise LinkRefused(LinkProblem.EXPIRED) from None
    except (BadSignature, UnicodeDecodeError):
        raise LinkRefused(LinkProblem.INVALID) from None
    link = _row(public_id, purpose)
    if link is None:
        raise LinkRefused(LinkProblem.INVALID)
    problem = problem_with(link, allow_used=allow_used)
    if problem is not None:
        raise LinkRefused(problem, link)
    return link


def find(token: str, purpose: str = NEXT_STEP) -> PatientLink | None:
    """The link behind `token` whatever state it is in (used, revoked, expired...), or
    None when the token names none: for pages that only need to know whose link it is."""
    try:
        return _row(_public_id(token, purpose), purpose)
    except (BadSignature, UnicodeDecodeError):
        return None


def _row(public_id: str, purpose: str) -> PatientLink | None:
    link = db.session.scalar(select(PatientLink).where(PatientLink.public_id == public_id))
    return link if link is not None and link.purpose == purpose else None


def problem_with(link: PatientLink, *, allow_used: bool = False) -> LinkProblem | None:
    """Why `link` cannot be used now, or None when it can."""
    if link.revoked_at is not None:
        return LinkProblem.REVOKED
    if link.used_at is not None and not allow_used:
        return LinkProblem.USED
    if link.locked_at is not None:
        return LinkProblem.LOCKED
    if link.expires_at <= utcnow():
        return LinkProblem.EXPIRED
    return None
