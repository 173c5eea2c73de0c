"""Consent records: who attested what, when, and to which wording."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.clock import utcnow
from portal.models.base import Base, enum_column
from portal.models.user import User


class ConsentKind(enum.StrEnum):
    CONTACT = "contact"
    OUTCOME_SHARING = "outcome_sharing"


class Consent(Base):
    __tablename__ = "consent"
    __table_args__ = (UniqueConstraint("referral_id", "kind"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referral.id"))
    kind: Mapped[ConsentKind] = mapped_column(enum_column(ConsentKind, "consent_kind"))
    granted: Mapped[bool]
    wording_version: Mapped[str] = mapped_column(String(40))
    attested_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    attested_at: Mapped[datetime] = mapped_column(default=utcnow)

    attested_by: Mapped[User] = relationship(lazy="joined")
