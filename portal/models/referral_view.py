"""When each partner user last looked at each referral."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index
from sqlalchemy.orm import Mapped, mapped_column

from portal.models.base import Base


class ReferralView(Base):
    """When a partner user last looked at a referral: drives the unread-updates badge."""

    __tablename__ = "referral_view"
    __table_args__ = (
        # The badge and the list's "new" marks probe (user, referral) for a seen_at:
        # with it in the index, each probe reads the index alone, not the table.
        Index("ix_referral_view_seen", "user_id", "referral_id", "seen_at"),
    )

    user_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"), primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referral.id"), primary_key=True)
    seen_at: Mapped[datetime]
