"""Needs-info requests: what intake asked the referring office for, and the answer."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.clock import utcnow
from portal.models.base import Base, enum_column
from portal.models.user import User


class CloseReason(enum.StrEnum):
    ANSWERED = "answered"
    RESUMED = "resumed"  # staff carried on with review without the rest
    SUPERSEDED = "superseded"  # a newer request asked again
    LEFT = "left"  # the referral left needs-info by another action

    @property
    def label(self) -> str:
        return {
            "answered": "everything asked for was sent",
            "resumed": "intake resumed review without it",
            "superseded": "a newer request replaced it",
            "left": "the referral moved on",
        }[self.value]


class InfoRequest(Base):
    """One round of "we need more": a checklist of referral items and a message."""

    __tablename__ = "info_request"
    __table_args__ = (Index("ix_info_request_open", "referral_id", "closed_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referral.id"))
    # Null when the portal itself asked (items missing at submission).
    requested_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    requested_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Shown to the partner.
    message: Mapped[str] = mapped_column(Text, default="")
    # Set when the request stops being open, with why: every item provided, staff went
    # on without it, a newer request replaced it, or the referral left needs-info
    # another way (withdrawn, declined...). Only an open request can be answered.
    closed_at: Mapped[datetime | None]
    close_reason: Mapped[CloseReason | None] = mapped_column(
        enum_column(CloseReason, "info_request_close_reason")
    )
    # The follow-up job's state: the next reminder to the partner, then escalation.
    reminders_sent: Mapped[int] = mapped_column(default=0)
    next_reminder_at: Mapped[datetime | None] = mapped_column(index=True)
    escalated_at: Mapped[datetime | None]

    requested_by: Mapped[User | None] = relationship(lazy="joined")
