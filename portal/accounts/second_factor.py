"""The second factor: TOTP (RFC 6238) with replay protection, and recovery codes.

A code is accepted for the current 30-second step or one either side (clock drift),
and only for a step later than the last one accepted for that user, so a code seen
over someone's shoulder cannot be used again. The check and the claim of the step are
one conditional UPDATE, so two requests racing with the same code cannot both win.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

import pyotp
import segno
from flask import current_app
from flask_babel import gettext
from markupsafe import Markup
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm.attributes import set_committed_value

from portal.auditing import record_audit
from portal.clock import utcnow
from portal.extensions import db
from portal.models import RecoveryCode, User, UserSession

RECOVERY_CODE_COUNT = 10
# No 0/o, 1/l/i: codes are read off paper.
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
TOTP_CODE = re.compile(r"^[0-9]{6}$")  # ASCII digits only, not any Unicode digit


def normalise_code(code: str) -> str:
    return re.sub(r"[\s-]", "", code or "").lower()


def looks_like_totp(code: str) -> bool:
    return bool(TOTP_CODE.match(normalise_code(code)))


# --- Enrolment -----------------------------------------------------------------------
# The secret being set up lives on the session doing the set-up, and reaches the
# account only with a code that proves the app has it: someone else holding the
# password and opening the set-up page gets a secret of their own, never this one.


def begin_enrolment(row: UserSession) -> str:
    """The secret this session is setting up (made on first sight, then kept)."""
    if row.pending_totp_secret is None:
        row.pending_totp_secret = pyotp.random_base32()
    return row.pending_totp_secret


def provisioning_uri(email: str, secret: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(
        name=email, issuer_name=current_app.config["TOTP_ISSUER"]
    )


def qr_code_svg(email: str, secret: str) -> Markup:
    """The enrolment QR code as inline SVG, drawn here (no network, no image host)."""
    svg = segno.make(provisioning_uri(email, secret), error="m").svg_inline(
        scale=5,
        dark="#0b0c0c",
        light="#ffffff",
        title=gettext("QR code for your authenticator app"),
    )
    return Markup(svg)  # noqa: S704 - segno's own SVG of our own URI


def finish_enrolment(row: UserSession, user: User, code: str) -> list[str] | None:
    """Turn the second factor on if `code` matches the session's secret; the new
    recovery codes (to show once), or None for a wrong code."""
    secret = row.pending_totp_secret
    step = _matching_step(secret, code) if secret else None
    if step is None:
        return None
    user.totp_secret = secret
    user.totp_last_step = step  # the code that proved it cannot sign in again
    user.totp_enabled_at = utcnow()
    row.pending_totp_secret = None
    record_audit("mfa.enrolled", actor=user, target_type="user", target_id=user.id)
    return replace_recovery_codes(user)


def remove_second_factor(user: User, *, by: User, reason: str) -> None:
    """Forget the user's secret and recovery codes (an admin's reset, or turning it off)."""
    user.totp_secret = None
    user.totp_enabled_at = None
    user.totp_last_step = None
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    record_audit("mfa.reset", actor=by, target_type="user", target_id=user.id, reason=reason)


# --- Codes ---------------------------------------------------------------------------


def _matching_step(secret: str, code: str) -> int | None:
    """The time step (now, or one either side) whose code is `code`, if any."""
    code = normalise_code(code)
    if not TOTP_CODE.match(code):
        return None
    totp = pyotp.TOTP(secret)
    current = totp.timecode(utcnow())
    for step in (current, current - 1, current + 1):
        if hmac.compare_digest(totp.generate_otp(step).encode(), code.encode()):
            return step
    return None


def verify_totp(user: User, code: str) -> bool:
    """Whether `code` is valid now and was never used before (claims its time step).

    The claim is one conditional UPDATE that also checks the secret is still the one
    the code was checked against, so a reset committed meanwhile wins."""
    secret = user.totp_secret
    step = _matching_step(secret, code) if secret and user.has_second_factor else None
    if step is None:
        return False
    claimed = db.session.execute(
        update(User)
        .where(
            User.id == user.id,
            User.totp_secret == secret,
            or_(User.totp_last_step.is_(None), User.totp_last_step < step),
        )
        .values(totp_last_step=step)
        .execution_options(synchronize_session=False)
    ).rowcount
    if claimed:
        set_committed_value(user, "totp_last_step", step)
    return bool(claimed)


def _code_hash(code: str) -> str:
    return hashlib.sha256(normalise_code(code).encode()).hexdigest()


def replace_recovery_codes(user: User) -> list[str]:
    """Ten new single-use codes (the old ones stop working); shown once, stored hashed."""
    db.session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = []
    for _ in range(RECOVERY_CODE_COUNT):
        raw = "".join(secrets.choice(RECOVERY_ALPHABET) for _ in range(10))
        codes.append(f"{raw[:5]}-{raw[5:]}")
    db.session.add_all(RecoveryCode(user_id=user.id, code_hash=_code_hash(c)) for c in codes)
    record_audit("mfa.recovery_codes_made", actor=user, target_type="user", target_id=user.id)
    return codes


def use_recovery_code(user: User, code: str) -> bool:
    """Spend one recovery code (a conditional UPDATE: a code works exactly once)."""
    if not normalise_code(code):
        return False
    spent = db.session.execute(
        update(RecoveryCode)
        .where(
            RecoveryCode.user_id == user.id,
            RecoveryCode.code_hash == _code_hash(code),
            RecoveryCode.used_at.is_(None),
        )
        .values(used_at=utcnow())
        .execution_options(synchronize_session=False)
    ).rowcount
    if spent:
        record_audit("mfa.recovery_code_used", actor=user, target_type="user", target_id=user.id)
    return bool(spent)


def recovery_codes_left(user: User) -> int:
    return (
        db.session.scalar(
            select(func.count(RecoveryCode.id)).where(
                RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None)
            )
        )
        or 0
    )


def check_second_factor(user: User, code: str) -> str | None:
    """Which kind of code `code` was ("totp" or "recovery_code"), or None if wrong."""
    if looks_like_totp(code):
        return "totp" if verify_totp(user, code) else None
    return "recovery_code" if use_recovery_code(user, code) else None
