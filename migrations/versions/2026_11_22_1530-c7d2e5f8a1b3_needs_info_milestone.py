"""needs-info milestone: when intake first asked for more information

Revision ID: c7d2e5f8a1b3
Revises: b3c1f0a9d2e4
Create Date: 2026-11-22 15:30:00+00:00

The incomplete-referral rate read the event log once per referral; a milestone column,
like first_touch_at, makes it a plain count over the cohort. Existing referrals get it
from their first needs_info event.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

import portal.models.base

revision = "c7d2e5f8a1b3"
down_revision = "b3c1f0a9d2e4"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "referral",
        sa.Column("needs_info_at", portal.models.base.UTCDateTime(timezone=True), nullable=True),
    )
    op.execute(
        "UPDATE referral SET needs_info_at = ("
        " SELECT min(referral_event.at) FROM referral_event"
        " WHERE referral_event.referral_id = referral.id"
        " AND referral_event.to_status = 'needs_info')"
        " WHERE EXISTS (SELECT 1 FROM referral_event"
        " WHERE referral_event.referral_id = referral.id"
        " AND referral_event.to_status = 'needs_info')"
    )
    # Covering index for the cohort figures (it includes what ix_referral_submitted_at had).
    op.drop_index("ix_referral_submitted_at", table_name="referral")
    op.create_index(
        "ix_referral_cohort",
        "referral",
        ["submitted_at", "partner_id", "status", "first_touch_at", "needs_info_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_referral_cohort", table_name="referral")
    op.create_index("ix_referral_submitted_at", "referral", ["submitted_at"])
    # In place, not batch mode: a copied table cannot take the generated queue_rank.
    op.drop_column("referral", "needs_info_at")
