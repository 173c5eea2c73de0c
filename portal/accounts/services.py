"""Signing in (with throttling and a second factor), account changes, password resets
and invitations. Functions add to the current transaction; the caller commits."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import current_app
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from itsdangerous import BadSignature, SignatureExpired, URLSafeTimedSerializer
from sqlalchemy import func, select, update

from portal.accounts.passwords import hash_password, verify_password
from portal.accounts.second_factor import (
    check_second_factor,
    remove_second_factor,
    verify_totp,
)
from portal.accounts.sessions import end_all_sessions, token_digest
from portal.accounts.throttling import (
    Wait,
    recent_requests,
    record_attempt,
    wait_before_attempt,
)
from portal.auditing import record_audit
from portal.clock import utcnow
from portal.extensions import db
from portal.fhir.registry import is_client_user
from portal.models import (
    STAFF_ROLES,
    AttemptKind,
    FhirClient,
    Invitation,
    Partner,
    PasswordReset,
    Role,
    User,
)
from portal.notifications.accounts import send_password_changed_notice, send_password_reset

# The refusal in English, as tests find it on the page (authenticate raises it through
# gettext, with the same words).
GENERIC_SIGN_IN_ERROR = "That email and password do not match an active account."
WRONG_CODE_ERROR = _l("That code is not right, or it was already used. Try the newest code.")


class SignInRefused(Exception):
    """The sign-in failed; the message is safe to show (it never says which part was wrong)."""


class SignInThrottled(SignInRefused):
    """Too many recent failures: the caller must wait before the next try is checked."""

    def __init__(self, wait: Wait) -> None:
        super().__init__(
            gettext(
                "Too many attempts. Wait %(wait)s and try again, "
                "or reset your password if you have forgotten it.",
                wait=wait.in_words,
            )
        )
        self.wait = wait


def normalise_email(email: str) -> str:
    # Lower-casing can lengthen text ("İ" becomes two characters): cut to the column.
    return email.strip().lower()[:254]


def authenticate(email: str, password: str, address: str) -> User:
    """The active user with these credentials, or SignInRefused.

    Every attempt is audited and every checked one counted (for throttling); the
    caller commits either way.
    """
    email = normalise_email(email)
    user = db.session.scalar(select(User).where(User.email == email))
    wait = wait_before_attempt(AttemptKind.PASSWORD, email, address)
    if wait:
        _audit_sign_in(user, succeeded=False, reason="throttled")
        raise SignInThrottled(wait)

    matches, new_hash = verify_password(user.password_hash if user else None, password)
    if user is None or not matches or not user.is_active:
        reason = "bad_credentials"
        if user is not None and matches:
            # The right password is no guess: not counted, so an account re-enabled
            # (or an office reactivated) is not met by a wait its owner built up.
            reason = "office_deactivated" if user.enabled else "disabled"
        else:
            record_attempt(AttemptKind.PASSWORD, email, address, succeeded=False)
        _audit_sign_in(user, succeeded=False, reason=reason)
        raise SignInRefused(gettext("That email and password do not match an active account."))

    if new_hash is not None:  # stronger parameters: only over the hash just checked
        db.session.execute(
            update(User)
            .where(User.id == user.id, User.credential_version == user.credential_version)
            .values(password_hash=new_hash)
            .execution_options(synchronize_session=False)
        )
    record_attempt(AttemptKind.PASSWORD, email, address, succeeded=True)
    if user.needs_second_factor:
        record_audit("sign_in.password_accepted", actor=user, target_type="user", target_id=user.id)
    else:
        _audit_sign_in(user, succeeded=True)
    return user


def verify_second_factor(user: User, code: str, address: str) -> str:
    """Check a TOTP or recovery code for a user whose password was right; which kind it
    was, or SignInRefused. Wrong codes are throttled like wrong passwords."""
    wait = wait_before_attempt(AttemptKind.SECOND_FACTOR, user.email, address)
    if wait:
        _audit_sign_in(user, succeeded=False, reason="second_factor_throttled")
        raise SignInThrottled(wait)
    kind = check_second_factor(user, code)
    record_attempt(AttemptKind.SECOND_FACTOR, user.email, address, succeeded=kind is not None)
    if kind is None:
        _audit_sign_in(user, succeeded=False, reason="wrong_second_factor")
        raise SignInRefused(str(WRONG_CODE_ERROR))
    _audit_sign_in(user, succeeded=True, second_factor=kind)
    return kind


def confirm_code(user: User, code: str, address: str) -> None:
    """A signed-in user proves they still hold their app before changing their second
    factor; throttled and counted like any other code. SignInRefused when wrong."""
    wait = wait_before_attempt(AttemptKind.SECOND_FACTOR, user.email, address)
    if wait:
        raise SignInThrottled(wait)
    right = verify_totp(user, code)
    record_attempt(AttemptKind.SECOND_FACTOR, user.email, address, succeeded=right)
    if not right:
        raise SignInRefused(str(WRONG_CODE_ERROR))


def confirm_password(user: User, password: str, address: str) -> None:
    """A signed-in user re-enters their password (to change it); throttled and counted
    like a sign-in. SignInRefused when wrong."""
    wait = wait_before_attempt(AttemptKind.PASSWORD, user.email, address)
    if wait:
        raise SignInThrottled(wait)
    right, _rehash = verify_password(user.password_hash, password)
    record_attempt(AttemptKind.PASSWORD, user.email, address, succeeded=right)
    if not right:
        raise SignInRefused(gettext("Your current password is not right."))


def _audit_sign_in(user: User | None, *, succeeded: bool, **detail: str) -> None:
    record_audit(
        "sign_in.succeeded" if succeeded else "sign_in.failed",
        actor=user,
        target_type="user",
        target_id=user.id if user else None,
        **detail,
    )


# --- Changing an account -------------------------------------------------------------


class AccountChangeRefused(Exception):
    """The change would leave the portal worse off; the message says why."""


def set_password(user: User, password: str, *, by: User, reason: str) -> None:
    """Store a new password, end every session of the user and tell them by email."""
    user.password_hash = hash_password(password)
    # A sign-in that checked the old password and has not made its session yet makes
    # one under the old version: ended on its first request (sessions.session_state).
    user.credential_version += 1
    end_all_sessions(user, by=by, reason=reason)
    _revoke_password_resets(user)
    record_audit("password.changed", actor=by, target_type="user", target_id=user.id, how=reason)
    send_password_changed_notice(user)


ACTIVE_ADMIN = (User.role == Role.ADMIN, User.enabled.is_(True), User.password_hash.is_not(None))
LAST_ADMIN = _l("This is the last active admin: enable, invite or promote another admin first.")


def _lock_admins() -> None:
    """Take the admin rows first (PostgreSQL), so two admins disabling or demoting each
    other at once run one after the other."""
    db.session.execute(select(User.id).where(*ACTIVE_ADMIN).with_for_update()).all()


def _check_an_admin_remains() -> None:
    """After the change, inside its transaction: at least one active admin is left
    (on SQLite the write lock taken by the change orders racing transactions)."""
    db.session.flush()
    if not db.session.scalar(select(func.count(User.id)).where(*ACTIVE_ADMIN)):
        raise AccountChangeRefused(str(LAST_ADMIN))


def set_enabled(user: User, enabled: bool, *, by: User) -> None:
    """Disable (ending every session at once) or re-enable an account."""
    if user.enabled == enabled:
        return
    if enabled and is_client_user(user):
        raise AccountChangeRefused(gettext("A FHIR client's account never signs in."))
    if user.role is Role.ADMIN:
        _lock_admins()
    user.enabled = enabled
    if not enabled and user.role is Role.ADMIN:
        _check_an_admin_remains()
    record_audit(
        "user.enabled" if enabled else "user.disabled",
        actor=by,
        target_type="user",
        target_id=user.id,
    )
    if not enabled:
        end_all_sessions(user, by=by, reason="disabled")
        _revoke_password_resets(user)
        _revoke_invitations(user)


def change_role(user: User, role: Role, *, by: User) -> None:
    """Give a member of staff another staff role; their sessions end at once."""
    if user.is_partner_user or role not in STAFF_ROLES:
        raise AccountChangeRefused(gettext("Only staff roles can be changed here."))
    if user.role is role:
        return
    was = user.role
    if was is Role.ADMIN:
        _lock_admins()
    user.role = role
    if was is Role.ADMIN:
        _check_an_admin_remains()
    record_audit(
        "user.role_changed",
        actor=by,
        target_type="user",
        target_id=user.id,
        from_role=was.value,
        to_role=role.value,
    )
    end_all_sessions(user, by=by, reason="role_changed")


def reset_second_factor(user: User, *, by: User) -> None:
    """An admin clears a user's second factor (a lost phone): they set it up again at
    their next sign-in, and every session they had ends now."""
    remove_second_factor(user, by=by, reason="admin_reset")
    end_all_sessions(user, by=by, reason="second_factor_reset")


def require_second_factor_for_partner(partner: Partner, required: bool, *, by: User) -> int:
    """Make (or stop making) a partner's users sign in with a second factor. Users
    without one are signed out now, so the rule holds from their next page on."""
    partner.require_second_factor = required
    record_audit(
        "partner.second_factor_required" if required else "partner.second_factor_optional",
        actor=by,
        target_type="partner",
        target_id=partner.id,
    )
    if not required:
        return 0
    return _end_office_sessions(
        partner, User.totp_enabled_at.is_(None), by=by, reason="second_factor_required"
    )


def _end_office_sessions(partner: Partner, *where: Any, by: User, reason: str) -> int:
    """End every session of the office's users (those matching `where`); how many."""
    users = select(User).where(User.partner_id == partner.id, *where).order_by(User.id)
    return sum(end_all_sessions(user, by=by, reason=reason) for user in db.session.scalars(users))


def set_partner_active(partner: Partner, active: bool, *, by: User) -> int:
    """Deactivate a referring office (its users and its EHRs' FHIR clients lose access at
    once) or let it back in; the number of sessions ended.

    The rule itself is `User.is_active` and the FHIR token checks, which read the
    office's flag on every request, so a sign-in racing this change gets no lasting
    session. Ending the sessions here means reactivating never brings one back. The
    office's referrals stay with the practice; its users' accounts keep their own
    state (a user disabled one by one stays disabled after a reactivation)."""
    if partner.active == active:
        return 0
    partner.active = active
    record_audit(
        "partner.activated" if active else "partner.deactivated",
        actor=by,
        target_type="partner",
        target_id=partner.id,
    )
    if active:
        return 0
    # Its EHRs' tokens end too (refused while the flag is off; this keeps them ended).
    db.session.execute(
        update(FhirClient)
        .where(FhirClient.partner_id == partner.id)
        .values(credential_version=FhirClient.credential_version + 1)
        .execution_options(synchronize_session=False)
    )
    return _end_office_sessions(partner, by=by, reason="partner_deactivated")


# --- Forgotten passwords -------------------------------------------------------------


class ResetInvalid(Exception):
    """The reset link cannot be used; the message says why and what to do."""


def request_password_reset(email: str, address: str) -> None:
    """Email a reset link if `email` belongs to an active account (the caller answers
    the same either way). Per-address abuse is the caller's 429; per-email, a fourth
    request within the hour sends nothing more."""
    email = normalise_email(email)
    user = db.session.scalar(select(User).where(User.email == email))
    config = current_app.config
    # Counted per email and address, so someone else asking for your address cannot
    # use up your own requests; a higher cap per email stops mail bombing.
    within_limit = (
        recent_requests(AttemptKind.PASSWORD_RESET, email=email, address=address)
        < config["PASSWORD_RESET_PER_EMAIL_HOURLY"]
        and recent_requests(AttemptKind.PASSWORD_RESET, email=email)
        < config["PASSWORD_RESET_PER_EMAIL_ALL_ADDRESSES_HOURLY"]
    )
    sent = within_limit and user is not None and user.is_active
    record_attempt(AttemptKind.PASSWORD_RESET, email, address, succeeded=sent)
    record_audit(
        "password.reset_requested",
        actor=None,
        target_type="user",
        target_id=user.id if user else None,
        sent=sent,
        **({} if within_limit else {"throttled": True}),
    )
    if not sent:
        return
    _revoke_password_resets(user)
    token = secrets.token_urlsafe(32)
    now = utcnow()
    db.session.add(
        PasswordReset(
            token_hash=token_digest(token),
            user_id=user.id,
            created_at=now,
            expires_at=now + current_app.config["PASSWORD_RESET_MAX_AGE"],
            requested_from=address,
        )
    )
    send_password_reset(user, token)


def reset_requests_from(address: str) -> int:
    return recent_requests(AttemptKind.PASSWORD_RESET, address=address)


def _revoke_password_resets(user: User) -> None:
    db.session.execute(
        update(PasswordReset)
        .where(
            PasswordReset.user_id == user.id,
            PasswordReset.used_at.is_(None),
            PasswordReset.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def load_password_reset(token: str) -> PasswordReset:
    """The usable reset behind `token`, or ResetInvalid saying why not."""
    reset = (
        db.session.scalar(
            select(PasswordReset).where(PasswordReset.token_hash == token_digest(token))
        )
        if token and len(token) <= 100
        else None
    )
    if reset is None:
        raise ResetInvalid(
            gettext(
                "This link is not valid. Check that you copied the whole link, "
                "or ask for a new one."
            )
        )
    if reset.used_at is not None:
        raise ResetInvalid(gettext("This link was already used. Ask for a new one if you need to."))
    if reset.revoked_at is not None:
        raise ResetInvalid(gettext("A newer link was sent. Use the link in the latest email."))
    if reset.expires_at <= utcnow():
        raise ResetInvalid(gettext("This link has expired. Ask for a new one."))
    if not reset.user.is_active:
        raise ResetInvalid(gettext("This account cannot be used. Ask your administrator."))
    return reset


def complete_password_reset(reset: PasswordReset, password: str, address: str) -> User:
    """Use the link up and set the password; every session of the user ends.

    The link is spent by one conditional UPDATE, so two submissions racing with the
    same link cannot both change the password (ResetInvalid for the loser)."""
    now = utcnow()
    spent = db.session.execute(
        update(PasswordReset)
        .where(
            PasswordReset.id == reset.id,
            PasswordReset.used_at.is_(None),
            PasswordReset.revoked_at.is_(None),
            PasswordReset.expires_at > now,
        )
        .values(used_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if not spent:
        raise ResetInvalid(gettext("This link was already used. Ask for a new one if you need to."))
    user = reset.user
    set_password(user, password, by=user, reason="reset")
    # Proving the mailbox makes this address one the account is known to use.
    record_attempt(AttemptKind.PASSWORD, user.email, address, succeeded=True)
    record_audit("password.reset_completed", actor=user, target_type="user", target_id=user.id)
    return user


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
    if partner is not None and not partner.active:
        raise InvitationInvalid(
            gettext("This office is deactivated: reactivate it before inviting its users.")
        )
    email = normalise_email(email)
    user = db.session.scalar(select(User).where(User.email == email))
    if user is None:
        user = User(email=email, full_name=full_name, role=role, partner=partner)
        db.session.add(user)
    elif user.password_hash is not None or is_client_user(user):
        raise InvitationInvalid(gettext("An account with that email already exists."))
    else:
        _check_reinvitation(user, role, partner, invited_by)
        user.full_name, user.role, user.partner = full_name, role, partner
    now = utcnow()
    _revoke_invitations(user)
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


def _check_reinvitation(
    user: User, role: Role, partner: Partner | None, invited_by: User | None
) -> None:
    """Inviting an account that is still waiting for its password again: a re-send. It
    may not turn a disabled account back on, and only an admin may change whom it is
    for (partner success inviting an office's user must not turn a pending admin into
    one)."""
    if not user.enabled:
        raise InvitationInvalid(
            gettext("That account is disabled: an admin enables it before it is invited again.")
        )
    same = user.role is role and user.partner_id == (partner.id if partner else None)
    if not same and (invited_by is None or invited_by.role is not Role.ADMIN):
        raise InvitationInvalid(
            gettext(
                "An invitation for that email is already waiting, for another role or "
                "office. Ask an admin to change it."
            )
        )


def _revoke_invitations(user: User) -> None:
    """Revoke the account's open invitations (a new one replaces them; disabling ends them)."""
    db.session.execute(
        update(Invitation)
        .where(
            Invitation.user_id == user.id,
            Invitation.accepted_at.is_(None),
            Invitation.revoked_at.is_(None),
        )
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session=False)
    )


def load_invitation(token: str) -> Invitation:
    """The usable invitation behind `token`, or InvitationInvalid saying why not."""
    max_age = current_app.config["INVITATION_MAX_AGE"].total_seconds()
    try:
        invitation_id = _serializer().loads(token, max_age=max_age)
    except SignatureExpired:
        raise InvitationInvalid(
            gettext(
                "This invitation has expired. Ask the person who invited you to send a new one."
            )
        ) from None
    except BadSignature:
        raise InvitationInvalid(
            gettext("This invitation link is not valid. Check that you copied the whole link.")
        ) from None
    invitation = db.session.get(Invitation, invitation_id)
    if invitation is None:
        raise InvitationInvalid(gettext("This invitation link is not valid."))
    if not invitation.user.enabled:
        raise InvitationInvalid(
            gettext("This account is disabled. Ask the person who invited you.")
        )
    if invitation.user.partner is not None and not invitation.user.partner.active:
        raise InvitationInvalid(
            gettext(
                "Your office's access to the referral portal is paused. "
                "Ask the practice's referral desk."
            )
        )
    if invitation.accepted_at is not None:
        raise InvitationInvalid(
            gettext("This invitation has already been used. Sign in with the password you chose.")
        )
    if invitation.revoked_at is not None:
        raise InvitationInvalid(
            gettext(
                "This invitation was replaced by a newer one. Use the link in the latest email."
            )
        )
    if invitation.expires_at <= utcnow():
        raise InvitationInvalid(
            gettext(
                "This invitation has expired. Ask the person who invited you to send a new one."
            )
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
