"""When each partner user last looked at each referral."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base


class ReferralView(Base):
    """When a partner user last looked at a referral: drives the unread-updates badge."""

    __tablename__ = "referral_view"

    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referral.id"), primary_key=True)
    seen_at: Mapped[datetime]
