"""Accounts, roles, invitations and sign-in attempts."""

from __future__ import annotations

import enum
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    ColumnElement,
    ForeignKey,
    Index,
    String,
    and_,
    exists,
    or_,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.clock import utcnow
from portal.models.base import Base, enum_column
from portal.models.partner import Partner


class Role(enum.StrEnum):
    PARTNER = "partner"
    INTAKE = "intake"
    CLINICAL = "clinical"
    PARTNER_SUCCESS = "partner_success"
    ADMIN = "admin"

    @property
    def label(self) -> str:
        return ROLE_LABELS[self]


ROLE_LABELS = {
    Role.PARTNER: "Referring office",
    Role.INTAKE: "Intake",
    Role.CLINICAL: "Clinical",
    Role.PARTNER_SUCCESS: "Partner success",
    Role.ADMIN: "Admin",
}

STAFF_ROLES = frozenset({Role.INTAKE, Role.CLINICAL, Role.PARTNER_SUCCESS, Role.ADMIN})
# Staff who need the patient's identity and clinical context to do their job.
PATIENT_DETAIL_ROLES = frozenset({Role.INTAKE, Role.CLINICAL})


class User(UserMixin, Base):
    __tablename__ = "user_account"
    __table_args__ = (
        CheckConstraint(
            "(role = 'partner') = (partner_id IS NOT NULL)", name="partner_users_have_partner"
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    full_name: Mapped[str] = mapped_column(String(120))
    role: Mapped[Role] = mapped_column(enum_column(Role, "role"))
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("partner.id"), index=True)
    # Empty until the invitee sets a password through their invitation.
    password_hash: Mapped[str | None] = mapped_column(String(255))
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_sign_in_at: Mapped[datetime | None]
    # The TOTP secret (base32). Set at the start of enrolment; the second factor is on
    # once `totp_enabled_at` is set (the user proved their app has it).
    totp_secret: Mapped[str | None] = mapped_column(String(64))
    totp_enabled_at: Mapped[datetime | None]
    # The last 30-second time step a code was accepted for: a code is never used twice.
    totp_last_step: Mapped[int | None] = mapped_column(BigInteger)
    # Moves on with every new password: a session signed in under another version is
    # ended (a sign-in that checked the old password as the change committed).
    credential_version: Mapped[int] = mapped_column(default=0, server_default="0")

    partner: Mapped[Partner | None] = relationship(lazy="joined")

    @hybrid_property
    def is_active(self) -> bool:
        """Flask-Login: may sign in. Not when disabled, before the invitation set a
        password, or while the user's office is deactivated (Partner.active)."""
        return (
            self.enabled
            and self.password_hash is not None
            and (self.partner is None or self.partner.active)
        )

    @is_active.inplace.expression
    @classmethod
    def _is_active_in_sql(cls) -> ColumnElement[bool]:
        # The same rule in SQL, for the statement that reads a session with its user
        # (and the timeline's early 304): a primary-key probe for a partner's users.
        office_active = exists().where(Partner.id == cls.partner_id, Partner.active.is_(True))
        return and_(
            cls.enabled.is_(True),
            cls.password_hash.is_not(None),
            or_(cls.partner_id.is_(None), office_active),
        )

    @property
    def has_second_factor(self) -> bool:
        return self.totp_enabled_at is not None

    @property
    def needs_second_factor(self) -> bool:
        """Staff always; a partner's users when their partner requires it or they chose it."""
        return (
            self.is_staff
            or self.has_second_factor
            or (self.partner is not None and self.partner.require_second_factor)
        )

    @property
    def is_staff(self) -> bool:
        return self.role in STAFF_ROLES

    @property
    def is_partner_user(self) -> bool:
        return self.role is Role.PARTNER

    @property
    def sees_patient_details(self) -> bool:
        return self.role in PATIENT_DETAIL_ROLES or self.role is Role.PARTNER

    def __repr__(self) -> str:
        return f"<User {self.id} {self.role}>"


class Invitation(Base):
    """One invitation to set a password; the emailed link is a signed token of its id."""

    __tablename__ = "invitation"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), index=True)
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    accepted_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]

    user: Mapped[User] = relationship(foreign_keys=[user_id])


class AttemptKind(enum.StrEnum):
    PASSWORD = "password"  # noqa: S105 - a kind of attempt, not a password
    SECOND_FACTOR = "second_factor"
    PASSWORD_RESET = "password_reset"  # noqa: S105 - asking for a reset link


class SignInAttempt(Base):
    """Every sign-in attempt (password or second factor) and every reset request, kept
    to slow down guessing per account, per address and per pair of the two."""

    __tablename__ = "sign_in_attempt"
    __table_args__ = (
        Index("ix_sign_in_attempt_email_at", "email", "at"),
        Index("ix_sign_in_attempt_address_at", "address", "at"),
        Index("ix_sign_in_attempt_email_address_at", "email", "address", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[AttemptKind] = mapped_column(
        enum_column(AttemptKind, "attempt_kind"), default=AttemptKind.PASSWORD
    )
    email: Mapped[str] = mapped_column(String(254))
    address: Mapped[str] = mapped_column(String(64))
    succeeded: Mapped[bool]


class UserSession(Base):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is stored,
    so a copy of the database cannot be replayed as cookies. Deleting the row ends the
    session at once, wherever the cookie has been copied to."""

    __tablename__ = "user_session"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    # False while the password is checked but the second factor is not (yet) given:
    # such a session opens only the second-factor pages, and briefly.
    authenticated: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Ends at the first of these: idle (moves with activity) and absolute.
    idle_expires_at: Mapped[datetime] = mapped_column(index=True)
    expires_at: Mapped[datetime] = mapped_column(index=True)
    user_agent: Mapped[str] = mapped_column(String(255), default="")
    address: Mapped[str] = mapped_column(String(64), default="")
    # The authenticator secret this session is setting up, until a code confirms it.
    pending_totp_secret: Mapped[str | None] = mapped_column(String(64))
    # The user's credential_version when the password was checked for this session.
    credential_version: Mapped[int] = mapped_column(default=0, server_default="0")

    user: Mapped[User] = relationship(lazy="raise")

    def __repr__(self) -> str:
        return f"<UserSession {self.id} user={self.user_id}>"


class RecoveryCode(Base):
    """One of a user's single-use recovery codes, stored as a SHA-256 (the codes are
    random, about 50 bits each, so a slow hash would add nothing but latency)."""

    __tablename__ = "recovery_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    code_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    used_at: Mapped[datetime | None]


class PasswordReset(Base):
    """A forgotten-password link: single use, short-lived, revoked by a newer one."""

    __tablename__ = "password_reset"

    id: Mapped[int] = mapped_column(primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(
        ForeignKey("user_account.id", ondelete="CASCADE"), index=True
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    requested_from: Mapped[str] = mapped_column(String(64), default="")

    user: Mapped[User] = relationship()
