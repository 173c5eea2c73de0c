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
from markupsafe import Markup
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm.attributes import set_committed_value

from portal.auditing import record_audit
from portal.clock import utcnow
from portal.extensions import db
from portal.models import RecoveryCode, User

RECOVERY_CODE_COUNT = 10
# No 0/o, 1/l/i: codes are read off paper.
RECOVERY_ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
TOTP_CODE = re.compile(r"^\d{6}$")


def normalise_code(code: str) -> str:
    return re.sub(r"[\s-]", "", code or "").lower()


def looks_like_totp(code: str) -> bool:
    return bool(TOTP_CODE.match(normalise_code(code)))


# --- Enrolment -----------------------------------------------------------------------


def begin_enrolment(user: User) -> str:
    """The secret being set up (a new one unless enrolment is already under way)."""
    if user.totp_secret is None or user.has_second_factor:
        user.totp_secret = pyotp.random_base32()
        user.totp_last_step = None
    return user.totp_secret


def provisioning_uri(user: User) -> str:
    return pyotp.TOTP(user.totp_secret).provisioning_uri(
        name=user.email, issuer_name=current_app.config["TOTP_ISSUER"]
    )


def qr_code_svg(user: User) -> Markup:
    """The enrolment QR code as inline SVG, drawn here (no network, no image host)."""
    svg = segno.make(provisioning_uri(user), error="m").svg_inline(
        scale=5, dark="#0b0c0c", light="#ffffff", title="QR code for your authenticator app"
    )
    return Markup(svg)  # noqa: S704 - segno's own SVG of our own URI


def finish_enrolment(user: User, code: str) -> list[str] | None:
    """Turn the second factor on if `code` matches the secret; the new recovery codes
    (to show once), or None for a wrong code."""
    if not verify_totp(user, code):
        return None
    user.totp_enabled_at = utcnow()
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


def verify_totp(user: User, code: str) -> bool:
    """Whether `code` is valid now and was never used before (claims its time step)."""
    code = normalise_code(code)
    if user.totp_secret is None or not TOTP_CODE.match(code):
        return False
    totp = pyotp.TOTP(user.totp_secret)
    now = utcnow()
    current = totp.timecode(now)
    for step in (current, current - 1, current + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            claimed = db.session.execute(
                update(User)
                .where(
                    User.id == user.id,
                    or_(User.totp_last_step.is_(None), User.totp_last_step < step),
                )
                .values(totp_last_step=step)
                .execution_options(synchronize_session=False)
            ).rowcount
            if claimed:
                set_committed_value(user, "totp_last_step", step)
            return bool(claimed)
    return False


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
