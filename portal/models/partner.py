"""Referring partners: first-class records, never a free-text field."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import String
from sqlalchemy.orm import Mapped, mapped_column

from portal.clock import utcnow
from portal.models.base import Base


class Partner(Base):
    """A referring office: primary care, a specialist practice, a discharge planning team."""

    __tablename__ = "partner"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(160), unique=True)
    # Type or specialty, e.g. "Primary care" or "Cardiology".
    specialty: Mapped[str] = mapped_column(String(120))
    referral_contact_name: Mapped[str] = mapped_column(String(120))
    referral_contact_email: Mapped[str] = mapped_column(String(254))
    referral_contact_phone: Mapped[str | None] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(default=True)
    # An admin can make every user of this office sign in with a second factor.
    require_second_factor: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    def __repr__(self) -> str:
        return f"<Partner {self.id}>"
