"""referrals remember a possible duplicate they were submitted despite

Revision ID: c3f8d2e6a410
Revises: b7e2c4a91d05
Create Date: 2026-11-30 10:10:00+00:00

An office submitting a second referral for the same patient within the duplicate
window is warned first; if it submits anyway, the new referral points at the earlier
one so intake sees a "possible duplicate" mark.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "c3f8d2e6a410"
down_revision = "b7e2c4a91d05"
branch_labels = None
depends_on = None


# In place, not batch mode: a copied table cannot take the generated queue_rank (and so
# the column has no foreign key, which SQLite could not drop in place).
def upgrade() -> None:
    op.add_column("referral", sa.Column("possible_duplicate_of_id", sa.Integer(), nullable=True))


def downgrade() -> None:
    op.drop_column("referral", "possible_duplicate_of_id")
