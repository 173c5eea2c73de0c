"""referrals record the patient's language and a locked-out patient link

Revision ID: e6a2d8c4f913
Revises: d9a4f1b3c726
Create Date: 2026-11-30 11:00:00+00:00

The patient's pages and messages open in their language (English or Spanish). A link
locked by wrong dates of birth marks the referral in intake's queue until a new link
goes out.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from portal.models.base import UTCDateTime

revision = "e6a2d8c4f913"
down_revision = "d9a4f1b3c726"
branch_labels = None
depends_on = None

CHECK_NAME = "ck_referral_patient_language"


# In place, not batch mode: a copied referral table cannot take the generated
# queue_rank. The CHECK is added on PostgreSQL (the model's enum validates on both).
def upgrade() -> None:
    op.add_column(
        "referral",
        sa.Column("patient_language", sa.String(length=2), server_default="en", nullable=False),
    )
    op.add_column("referral", sa.Column("patient_locked_out_at", UTCDateTime(), nullable=True))
    if op.get_context().dialect.name == "postgresql":
        op.create_check_constraint(
            op.f(CHECK_NAME), "referral", "patient_language IN ('en', 'es')"
        )
    # A link locked before this revision still waits on intake: mark its referral.
    op.execute(
        """
        UPDATE referral SET patient_locked_out_at = (
            SELECT MAX(link.locked_at) FROM patient_link link
            WHERE link.referral_id = referral.id AND link.revoked_at IS NULL
        )
        WHERE EXISTS (
            SELECT 1 FROM patient_link link
            WHERE link.referral_id = referral.id AND link.locked_at IS NOT NULL
              AND link.revoked_at IS NULL
        )
        """
    )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.drop_constraint(op.f(CHECK_NAME), "referral", type_="check")
    op.drop_column("referral", "patient_locked_out_at")
    op.drop_column("referral", "patient_language")
