"""sweep and partner indexes: untagged clocks only; a covering partner cohort index

Revision ID: d4e8a2c6b9f1
Revises: c7d2e5f8a1b3
Create Date: 2026-11-22 16:20:00+00:00

The SLA sweep looked for clocks to tag among every open clock past its time (most of
them long since tagged); these partial indexes hold only the untagged ones. A partner's
dashboard figures read the partner's cohort index alone.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "d4e8a2c6b9f1"
down_revision = "c7d2e5f8a1b3"
branch_labels = None
depends_on = None


def _where(condition: str) -> dict:
    return {"sqlite_where": sa.text(condition), "postgresql_where": sa.text(condition)}


def upgrade() -> None:
    op.drop_index("ix_sla_clock_open_due", table_name="sla_clock")
    op.drop_index("ix_sla_clock_open_at_risk", table_name="sla_clock")
    op.create_index(
        "ix_sla_clock_breach_due",
        "sla_clock",
        ["due_at"],
        **_where("stopped_at IS NULL AND breached_at IS NULL"),
    )
    op.create_index(
        "ix_sla_clock_at_risk_due",
        "sla_clock",
        ["at_risk_at"],
        **_where("stopped_at IS NULL AND at_risk_tagged_at IS NULL"),
    )
    op.create_index(
        "ix_sla_clock_paused",
        "sla_clock",
        ["referral_id"],
        **_where("stopped_at IS NULL AND resumed_at IS NULL"),
    )
    op.drop_index("ix_referral_partner_submitted", table_name="referral")
    op.create_index(
        "ix_referral_partner_cohort",
        "referral",
        ["partner_id", "submitted_at", "status", "first_touch_at", "needs_info_at"],
    )


def downgrade() -> None:
    op.drop_index("ix_referral_partner_cohort", table_name="referral")
    op.create_index("ix_referral_partner_submitted", "referral", ["partner_id", "submitted_at"])
    op.drop_index("ix_sla_clock_paused", table_name="sla_clock")
    op.drop_index("ix_sla_clock_at_risk_due", table_name="sla_clock")
    op.drop_index("ix_sla_clock_breach_due", table_name="sla_clock")
    op.create_index(
        "ix_sla_clock_open_at_risk", "sla_clock", ["at_risk_at"], **_where("stopped_at IS NULL")
    )
    op.create_index(
        "ix_sla_clock_open_due", "sla_clock", ["due_at"], **_where("stopped_at IS NULL")
    )
