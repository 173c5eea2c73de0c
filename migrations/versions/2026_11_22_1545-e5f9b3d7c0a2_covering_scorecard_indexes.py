"""covering scorecard indexes: period figures answered from indexes alone

Revision ID: e5f9b3d7c0a2
Revises: d4e8a2c6b9f1
Create Date: 2026-11-22 15:45:00+00:00

At a million referrals the weekly scorecard spent its time fetching table rows one by
one (a referral's first contact attempt, its no-shows, each cohort member's
milestones). These indexes carry the columns those queries read.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "e5f9b3d7c0a2"
down_revision = "d4e8a2c6b9f1"
branch_labels = None
depends_on = None

COHORT = ["status", "first_touch_at", "needs_info_at", "triaged_at", "patient_reached_at",
          "scheduled_at"]  # fmt: skip

# name, table, (old columns, new columns)
CHANGES = [
    ("ix_referral_cohort", "referral",
     (["submitted_at", "partner_id", "status", "first_touch_at", "needs_info_at"],
      ["submitted_at", "partner_id", *COHORT])),
    ("ix_referral_partner_cohort", "referral",
     (["partner_id", "submitted_at", "status", "first_touch_at", "needs_info_at"],
      ["partner_id", "submitted_at", *COHORT])),
    ("ix_referral_outcome_at", "referral",
     (["outcome_at"], ["outcome_at", "partner_id", "submitted_at"])),
    ("ix_referral_event_referral_at", "referral_event",
     (["referral_id", "at"], ["referral_id", "at", "to_status", "from_status"])),
]  # fmt: skip


def upgrade() -> None:
    for name, table, (_old, new) in CHANGES:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, new)
    # Breached clocks only: an index over every clock ever would have SQLite read
    # "breached_at IS NULL" as two rows (most values are distinct, the NULL one is all
    # the open and unbreached clocks) and pick it for the sweep.
    op.drop_index("ix_sla_clock_breached_at", table_name="sla_clock")
    op.create_index(
        "ix_sla_clock_breached_at",
        "sla_clock",
        ["breached_at", "stage", "breach_reason", "referral_id"],
        sqlite_where=sa.text("breached_at IS NOT NULL"),
        postgresql_where=sa.text("breached_at IS NOT NULL"),
    )
    op.drop_index("ix_outreach_attempt_referral_id", table_name="outreach_attempt")
    op.create_index("ix_outreach_attempt_referral_at", "outreach_attempt", ["referral_id", "at"])
    op.create_index(
        "ix_referral_partner_outcome", "referral", ["partner_id", "outcome_at", "submitted_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_sla_clock_breached_at", table_name="sla_clock")
    op.create_index("ix_sla_clock_breached_at", "sla_clock", ["breached_at"])
    op.drop_index("ix_referral_partner_outcome", table_name="referral")
    op.drop_index("ix_outreach_attempt_referral_at", table_name="outreach_attempt")
    op.create_index("ix_outreach_attempt_referral_id", "outreach_attempt", ["referral_id"])
    for name, table, (old, _new) in CHANGES:
        op.drop_index(name, table_name=table)
        op.create_index(name, table, old)
