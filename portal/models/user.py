"""Accounts, roles, invitations and sign-in attempts."""

from __future__ import annotations

import enum
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import CheckConstraint, ForeignKey, Index, String
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

    partner: Mapped[Partner | None] = relationship(lazy="joined")

    @property
    def is_active(self) -> bool:  # Flask-Login: disabled accounts cannot sign in
        return self.enabled and self.password_hash is not None

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


class SignInAttempt(Base):
    """Every sign-in attempt, kept to throttle guessing per account and per address."""

    __tablename__ = "sign_in_attempt"
    __table_args__ = (
        Index("ix_sign_in_attempt_email_at", "email", "at"),
        Index("ix_sign_in_attempt_address_at", "address", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow)
    email: Mapped[str] = mapped_column(String(254))
    address: Mapped[str] = mapped_column(String(64))
    succeeded: Mapped[bool]
