"""scorecard snapshots, referral packets and process ratings

Revision ID: 8b3e5f27a9d1
Revises: 17e134167ac0
Create Date: 2026-11-30 14:00:00+00:00

- scorecard_snapshot keeps a closed period's table rows; scorecard_epoch counts the
  changes per UTC day that make a snapshot stale.
- service_line gains its referral packet (what we treat, how to submit, what happens
  after, contacts), empty until an admin writes it.
- process_rating holds a referring office's 1-5 rating of a referral's process.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from portal.models.base import UTCDateTime

revision = "8b3e5f27a9d1"
down_revision = "17e134167ac0"
branch_labels = None
depends_on = None

PACKET_TEXTS = ("packet_treats", "packet_how_to_submit", "packet_after", "packet_contacts")


def upgrade() -> None:
    op.create_table(
        "scorecard_snapshot",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("definitions", sa.Integer(), nullable=False),
        sa.Column("start_at", UTCDateTime(), nullable=False),
        sa.Column("end_at", UTCDateTime(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("table_name", sa.String(length=40), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("rows", sa.JSON(), nullable=False),
        sa.Column("computed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scorecard_snapshot")),
        sa.UniqueConstraint(
            "definitions",
            "start_at",
            "end_at",
            "partner_id",
            "table_name",
            name=op.f("uq_scorecard_snapshot_definitions_start_at_end_at_partner_id_table_name"),
        ),
    )
    op.create_table(
        "scorecard_epoch",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_scorecard_epoch")),
    )
    op.create_table(
        "process_rating",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("referral_id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("rated_by_id", sa.Integer(), nullable=True),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("score BETWEEN 1 AND 5", name=op.f("ck_process_rating_score_range")),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partner.id"], name=op.f("fk_process_rating_partner_id_partner")
        ),
        sa.ForeignKeyConstraint(
            ["rated_by_id"],
            ["user_account.id"],
            name=op.f("fk_process_rating_rated_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["referral_id"], ["referral.id"], name=op.f("fk_process_rating_referral_id_referral")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_process_rating")),
        sa.UniqueConstraint("referral_id", name=op.f("uq_process_rating_referral_id")),
    )
    op.create_index(
        op.f("ix_process_rating_created_at"), "process_rating", ["created_at"], unique=False
    )
    op.create_index(
        op.f("ix_process_rating_partner_id"), "process_rating", ["partner_id"], unique=False
    )
    for name in PACKET_TEXTS:
        op.add_column(
            "service_line", sa.Column(name, sa.Text(), nullable=False, server_default="")
        )
    op.add_column("service_line", sa.Column("packet_updated_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    # In place (SQLite drops columns itself): a batch copy of service_line would trip the
    # foreign keys that point at it.
    for name in ("packet_updated_at", *reversed(PACKET_TEXTS)):
        op.drop_column("service_line", name)
    op.drop_index(op.f("ix_process_rating_partner_id"), table_name="process_rating")
    op.drop_index(op.f("ix_process_rating_created_at"), table_name="process_rating")
    op.drop_table("process_rating")
    op.drop_table("scorecard_epoch")
    op.drop_table("scorecard_snapshot")
