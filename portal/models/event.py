"""The referral timeline: one row per thing that happened."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from portal.clock import utcnow
from portal.models.base import Base, enum_column
from portal.models.referral import Status
from portal.models.user import User

SUMMARY_MAX_LENGTH = 300


class ReferralEvent(Base):
    __tablename__ = "referral_event"
    # The timeline in order; the status columns let the scorecard count a referral's
    # no-shows and reschedules from the index alone.
    __table_args__ = (
        Index("ix_referral_event_referral_at", "referral_id", "at", "to_status", "from_status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referral.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    # Null for what the system did on its own (routing at submission, jobs).
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    kind: Mapped[str] = mapped_column(String(40))
    from_status: Mapped[Status | None] = mapped_column(enum_column(Status, "from_status"))
    to_status: Mapped[Status | None] = mapped_column(enum_column(Status, "to_status"))
    partner_visible: Mapped[bool]
    # What the partner reads: no staff-only detail. A headline: see `_fit_summary`.
    summary: Mapped[str] = mapped_column(String(SUMMARY_MAX_LENGTH))
    # Staff-only note; never rendered for partners.
    staff_note: Mapped[str] = mapped_column(Text, default="")

    actor: Mapped[User | None] = relationship(lazy="joined")

    @validates("summary")
    def _fit_summary(self, _key: str, value: str) -> str:
        """A headline built from a list (missing items) can outgrow its column: it ends
        in an ellipsis rather than being refused by PostgreSQL (SQLite would keep it
        whole). Typed text that lands here is bounded by its form to fit whole."""
        if len(value) <= SUMMARY_MAX_LENGTH:
            return value
        return value[: SUMMARY_MAX_LENGTH - 1] + "…"
