"""SLA clocks, their targets and the business-hours calendar they run on."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Date, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.models.base import Base, enum_column, partial_index
from portal.models.referral import Referral, Urgency
from portal.models.user import Role, User


class SlaStage(enum.StrEnum):
    FIRST_TOUCH = "first_touch"  # submitted -> first touch by intake
    TRIAGE = "triage"  # first touch -> accepted / declined / redirected
    NEXT_STEP = "next_step"  # accepted (or no-show) -> patient confirmed or scheduled
    VISIT = "visit"  # scheduled -> the visit's outcome recorded
    PARTNER_FEEDBACK = "partner_feedback"  # outcome -> partner notified of it

    @property
    def label(self) -> str:
        return STAGE_LABELS[self]

    @property
    def owner(self) -> Role:
        return STAGE_OWNERS[self]


STAGE_LABELS = {
    SlaStage.FIRST_TOUCH: "First touch",
    SlaStage.TRIAGE: "Triage",
    SlaStage.NEXT_STEP: "Patient next step",
    SlaStage.VISIT: "Visit outcome",
    SlaStage.PARTNER_FEEDBACK: "Partner feedback",
}
STAGE_OWNERS = {
    SlaStage.FIRST_TOUCH: Role.INTAKE,
    SlaStage.TRIAGE: Role.CLINICAL,
    SlaStage.NEXT_STEP: Role.INTAKE,
    SlaStage.VISIT: Role.INTAKE,
    SlaStage.PARTNER_FEEDBACK: Role.PARTNER_SUCCESS,
}


class SlaClock(Base):
    """One stage's clock on one referral. At most one clock per referral is not stopped.

    A running clock has `resumed_at` and a `due_at`; a paused one (needs_info) has
    neither and keeps the business minutes it had used in `used_minutes`.
    """

    __tablename__ = "sla_clock"
    __table_args__ = (
        Index("ix_sla_clock_referral", "referral_id", "stopped_at"),
        # Partial indexes over the clocks still running: a small part of a long history,
        # and planners estimate them well (SQLite's statistics cannot see that most
        # stopped_at values are distinct but the NULL one covers all open clocks).
        partial_index(
            "uq_sla_clock_open_per_referral", "referral_id", where="stopped_at IS NULL", unique=True
        ),
        # What the sweep still has to tag: only untagged clocks, however long the history.
        partial_index(
            "ix_sla_clock_breach_due", "due_at", where="stopped_at IS NULL AND breached_at IS NULL"
        ),
        partial_index(
            "ix_sla_clock_at_risk_due",
            "at_risk_at",
            where="stopped_at IS NULL AND at_risk_tagged_at IS NULL",
        ),
        partial_index(
            "ix_sla_clock_paused", "referral_id", where="stopped_at IS NULL AND resumed_at IS NULL"
        ),
        # The scorecard's breach reasons, from the index alone. Breached clocks only: over
        # every clock, SQLite would read "breached_at IS NULL" as two rows and use it.
        partial_index(
            "ix_sla_clock_breached_at",
            "breached_at",
            "stage",
            "breach_reason",
            "referral_id",
            where="breached_at IS NOT NULL",
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referral.id"))
    stage: Mapped[SlaStage] = mapped_column(enum_column(SlaStage, "sla_stage"))
    owner_role: Mapped[Role] = mapped_column(enum_column(Role, "owner_role"))
    target_minutes: Mapped[float]
    started_at: Mapped[datetime]
    used_minutes: Mapped[float] = mapped_column(default=0.0)
    resumed_at: Mapped[datetime | None]
    due_at: Mapped[datetime | None]
    at_risk_at: Mapped[datetime | None]
    at_risk_tagged_at: Mapped[datetime | None]
    breached_at: Mapped[datetime | None]
    stopped_at: Mapped[datetime | None]
    breach_reason: Mapped[str | None] = mapped_column(String(200))
    breach_reason_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))

    breach_reason_by: Mapped[User | None] = relationship()
    referral: Mapped[Referral] = relationship(viewonly=True)

    @property
    def is_paused(self) -> bool:
        return self.stopped_at is None and self.resumed_at is None


class SlaTarget(Base):
    """An admin's target for a stage and urgency; missing rows use the configured default."""

    __tablename__ = "sla_target"
    __table_args__ = (UniqueConstraint("stage", "urgency"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    stage: Mapped[SlaStage] = mapped_column(enum_column(SlaStage, "sla_stage"))
    urgency: Mapped[Urgency] = mapped_column(enum_column(Urgency, "urgency"))
    business_minutes: Mapped[float]


class BusinessHours(Base):
    """The practice's week (a single row); missing, the configured default applies."""

    __tablename__ = "business_hours"

    id: Mapped[int] = mapped_column(primary_key=True)
    time_zone: Mapped[str] = mapped_column(String(64))
    # {"0": ["09:00", "17:00"], ..., "6": null}: Monday is 0.
    weekly: Mapped[dict[str, Any]] = mapped_column(JSON)


class Holiday(Base):
    __tablename__ = "holiday"

    id: Mapped[int] = mapped_column(primary_key=True)
    day: Mapped[date] = mapped_column(Date, unique=True)
    name: Mapped[str] = mapped_column(String(120))
