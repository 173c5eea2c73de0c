"""What the scorecard remembers: closed periods' figures, and what invalidates them."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, CheckConstraint, Date, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from portal.clock import utcnow
from portal.models.base import Base


class ScorecardSnapshot(Base):
    """One scorecard table's rows for one closed period and scope, as computed then.

    A row is used only while `epoch` still equals the sum of the `ScorecardEpoch`
    versions of the UTC days the period touches: any later change to a referral of the
    period bumps one of those, and the snapshot is computed again on the next request.
    """

    __tablename__ = "scorecard_snapshot"
    __table_args__ = (
        UniqueConstraint("definitions", "start_at", "end_at", "partner_id", "table_name"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # The version of the figures' definitions (portal.scorecard.snapshots.DEFINITIONS)
    # that computed the rows: a release that changes a definition ignores older ones.
    definitions: Mapped[int]
    start_at: Mapped[datetime]
    end_at: Mapped[datetime]
    # 0 for all partners (not a foreign key: a row per scope, none of them a partner's).
    partner_id: Mapped[int] = mapped_column(default=0)
    table_name: Mapped[str] = mapped_column(String(40))
    epoch: Mapped[int]
    rows: Mapped[list[Any]] = mapped_column(JSON)
    computed_at: Mapped[datetime] = mapped_column(default=utcnow)


class ScorecardEpoch(Base):
    """A counter per UTC day, bumped by every change that can alter a figure of that day.

    The row for `date.min` is bumped by changes that can alter any period (a partner's
    name, shown in the tables).
    """

    __tablename__ = "scorecard_epoch"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    version: Mapped[int] = mapped_column(default=0)


class ProcessRating(Base):
    """A referring office's 1-5 rating of how the referral process went, one per referral."""

    __tablename__ = "process_rating"
    __table_args__ = (CheckConstraint("score BETWEEN 1 AND 5", name="score_range"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referral.id"), unique=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partner.id"), index=True)
    rated_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    score: Mapped[int]
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
