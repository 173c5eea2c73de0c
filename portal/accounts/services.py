"""Signing in (with throttling) and invitations."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import func, select

from portal.accounts.passwords import hash_password, verify_password
from portal.auditing import record_audit
from portal.clock import utcnow
from portal.extensions import db
from portal.models import Invitation, Partner, Role, SignInAttempt, User

GENERIC_SIGN_IN_ERROR = "That email and password do not match an active account."
THROTTLED_SIGN_IN_ERROR = (
    "Too many sign-in attempts. Wait 15 minutes and try again, or ask your administrator."
)


class SignInRefused(Exception):
    """The sign-in failed; the message is safe to show (it never says which part was wrong)."""


def normalise_email(email: str) -> str:
    return email.strip().lower()


def _recent_failures(column, value: str) -> int:
    since = utcnow() - current_app.config["LOGIN_THROTTLE_WINDOW"]
    return db.session.scalar(
        select(func.count(SignInAttempt.id)).where(
            column == value, SignInAttempt.succeeded.is_(False), SignInAttempt.at >= since
        )
    )


def authenticate(email: str, password: str, address: str) -> User:
    """The active user with these credentials, or SignInRefused.

    Every attempt is recorded (for throttling) and audited; the caller commits.
    """
    email = normalise_email(email)
    config = current_app.config
    throttled = (
        _recent_failures(SignInAttempt.email, email) >= config["LOGIN_MAX_FAILURES_PER_ACCOUNT"]
        or _recent_failures(SignInAttempt.address, address)
        >= config["LOGIN_MAX_FAILURES_PER_ADDRESS"]
    )
    user = db.session.scalar(select(User).where(User.email == email))
    if throttled:
        _record_attempt(email, address, user, succeeded=False, reason="throttled")
        raise SignInRefused(THROTTLED_SIGN_IN_ERROR)

    matches, new_hash = verify_password(user.password_hash if user else None, password)
    if user is None or not matches or not user.is_active:
        _record_attempt(email, address, user, succeeded=False, reason="bad_credentials")
        raise SignInRefused(GENERIC_SIGN_IN_ERROR)

    if new_hash is not None:
        user.password_hash = new_hash
    user.last_sign_in_at = utcnow()
    _record_attempt(email, address, user, succeeded=True)
    return user


def _record_attempt(
    email: str, address: str, user: User | None, *, succeeded: bool, reason: str | None = None
) -> None:
    db.session.add(SignInAttempt(email=email, address=address, succeeded=succeeded))
    action = "sign_in.succeeded" if succeeded else "sign_in.failed"
    detail = {"reason": reason} if reason else {}
    record_audit(
        action, actor=user, target_type="user", target_id=user.id if user else None, **detail
    )


# --- Invitations -------------------------------------------------------------------

INVITATION_SALT = "portal.invitation"


class InvitationInvalid(Exception):
    """The invitation link cannot be used; the message says why and what to do."""


@dataclass
class InvitationLink:
    invitation: Invitation
    token: str


def _serializer() -> URLSafeTimedSerializer:
    secrets = [*current_app.config["SECRET_KEY_FALLBACKS"], current_app.config["SECRET_KEY"]]
    return URLSafeTimedSerializer(secrets, salt=INVITATION_SALT)


def invite_user(
    *,
    email: str,
    full_name: str,
    role: Role,
    partner: Partner | None,
    invited_by: User | None,
) -> InvitationLink:
    """Create (or re-invite) an account that has no password yet, and its invitation.

    A new invitation revokes any earlier one for the same account.
    """
    email = normalise_email(email)
    user = db.session.scalar(select(User).where(User.email == email))
    if user is None:
        user = User(email=email, full_name=full_name, role=role, partner=partner)
        db.session.add(user)
    elif user.password_hash is not None:
        raise InvitationInvalid("An account with that email already exists.")
    else:
        user.full_name, user.role, user.partner = full_name, role, partner
    now = utcnow()
    for earlier in db.session.scalars(
        select(Invitation).where(
            Invitation.user == user,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
        )
    ):
        earlier.revoked_at = now
    invitation = Invitation(
        user=user,
        created_by_id=invited_by.id if invited_by else None,
        expires_at=now + current_app.config["INVITATION_MAX_AGE"],
    )
    db.session.add(invitation)
    db.session.flush()
    record_audit(
        "user.invited",
        actor=invited_by,
        target_type="user",
        target_id=user.id,
        role=role.value,
        partner_id=partner.id if partner else None,
    )
    return InvitationLink(invitation, _serializer().dumps(invitation.id))


def load_invitation(token: str) -> Invitation:
    """The usable invitation behind `token`, or InvitationInvalid saying why not."""
    max_age = current_app.config["INVITATION_MAX_AGE"].total_seconds()
    try:
        invitation_id = _serializer().loads(token, max_age=max_age)
    except SignatureExpired:
        raise InvitationInvalid(
            "This invitation has expired. Ask the person who invited you to send a new one."
        ) from None
    except BadSignature:
        raise InvitationInvalid(
            "This invitation link is not valid. Check that you copied the whole link."
        ) from None
    invitation = db.session.get(Invitation, invitation_id)
    if invitation is None:
        raise InvitationInvalid("This invitation link is not valid.")
    if invitation.accepted_at is not None:
        raise InvitationInvalid(
            "This invitation has already been used. Sign in with the password you chose."
        )
    if invitation.revoked_at is not None:
        raise InvitationInvalid(
            "This invitation was replaced by a newer one. Use the link in the latest email."
        )
    if invitation.expires_at <= utcnow():
        raise InvitationInvalid(
            "This invitation has expired. Ask the person who invited you to send a new one."
        )
    return invitation


def accept_invitation(invitation: Invitation, password: str) -> User:
    """Set the invitee's password and use the invitation up."""
    now: datetime = utcnow()
    invitation.accepted_at = now
    user = invitation.user
    user.password_hash = hash_password(password)
    record_audit("user.invitation_accepted", actor=user, target_type="user", target_id=user.id)
    return user
