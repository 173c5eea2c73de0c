"""queue indexes: the queue's order as an indexed computed column; open-clock indexes

Revision ID: b3c1f0a9d2e4
Revises: 83bcaab7129d
Create Date: 2026-11-22 14:50:00+00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "b3c1f0a9d2e4"
down_revision = "83bcaab7129d"
branch_labels = None
depends_on = None

# Frozen copy of portal.models.referral.QUEUE_RANK_SQL as of this revision.
QUEUE_RANK_SQL = (
    "CASE WHEN status IN ('completed', 'declined', 'redirected', 'unreachable', 'withdrawn') "
    "THEN 2 WHEN urgency = 'urgent' THEN 0 ELSE 1 END"
)


def upgrade() -> None:
    # Not batch mode: SQLite adds a VIRTUAL generated column in place (no table copy);
    # PostgreSQL stores it, computing it for the existing rows.
    # PostgreSQL only has STORED; SQLite can only add a VIRTUAL one to an existing table.
    persisted = True if op.get_bind().dialect.name == "postgresql" else None
    op.add_column(
        "referral",
        sa.Column(
            "queue_rank",
            sa.Integer(),
            sa.Computed(QUEUE_RANK_SQL, persisted=persisted),
            nullable=False,
        ),
    )
    op.drop_index("ix_referral_queue", table_name="referral")
    op.create_index(
        "ix_referral_queue_rank", "referral", ["queue_rank", "submitted_at", "id"], unique=False
    )
    op.create_index(
        "ix_referral_status_queue_rank",
        "referral",
        ["status", "queue_rank", "submitted_at", "id"],
        unique=False,
    )
    op.create_index(
        "ix_referral_partner_queue_rank",
        "referral",
        ["partner_id", "queue_rank", "submitted_at", "id"],
        unique=False,
    )
    open_clocks = {
        "sqlite_where": sa.text("stopped_at IS NULL"),
        "postgresql_where": sa.text("stopped_at IS NULL"),
    }
    op.drop_index("ix_sla_clock_due", table_name="sla_clock")
    op.drop_index("ix_sla_clock_at_risk", table_name="sla_clock")
    op.create_index(
        "uq_sla_clock_open_per_referral", "sla_clock", ["referral_id"], unique=True, **open_clocks
    )
    op.create_index("ix_sla_clock_open_due", "sla_clock", ["due_at"], **open_clocks)
    op.create_index("ix_sla_clock_open_at_risk", "sla_clock", ["at_risk_at"], **open_clocks)


def downgrade() -> None:
    op.drop_index("ix_sla_clock_open_at_risk", table_name="sla_clock")
    op.drop_index("ix_sla_clock_open_due", table_name="sla_clock")
    op.drop_index("uq_sla_clock_open_per_referral", table_name="sla_clock")
    op.create_index("ix_sla_clock_at_risk", "sla_clock", ["stopped_at", "at_risk_at"])
    op.create_index("ix_sla_clock_due", "sla_clock", ["stopped_at", "due_at"])
    op.drop_index("ix_referral_partner_queue_rank", table_name="referral")
    op.drop_index("ix_referral_status_queue_rank", table_name="referral")
    op.drop_index("ix_referral_queue_rank", table_name="referral")
    op.create_index(
        "ix_referral_queue", "referral", ["status", "urgency", "submitted_at"], unique=False
    )
    with op.batch_alter_table("referral") as batch_op:
        batch_op.drop_column("queue_rank")
