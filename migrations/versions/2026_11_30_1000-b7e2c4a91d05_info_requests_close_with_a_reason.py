"""information requests close with a reason; close the ones left open

Revision ID: b7e2c4a91d05
Revises: a9c4e1f7b2d3
Create Date: 2026-11-30 10:00:00+00:00

A request used to close only when every item arrived, so a referral that left
needs-info another way (staff resumed review, a newer request, a withdrawal) kept an
open request the partner was offered and then refused. Requests now close whenever
the referral leaves needs-info, saying why; this closes those already left behind.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "b7e2c4a91d05"
down_revision = "a9c4e1f7b2d3"
branch_labels = None
depends_on = None


CLOSE_REASONS = ("answered", "resumed", "superseded", "left")
CHECK_NAME = "ck_info_request_info_request_close_reason"


# In place, not batch mode: a copied info_request cannot be dropped while referral items
# point at it (SQLite enforces the foreign keys), so the column is added and dropped as
# it is, with its CHECK on PostgreSQL (the model's enum validates it on both).
def upgrade() -> None:
    op.add_column("info_request", sa.Column("close_reason", sa.String(length=10), nullable=True))
    if op.get_context().dialect.name == "postgresql":
        allowed = ", ".join(f"'{reason}'" for reason in CLOSE_REASONS)
        op.create_check_constraint(
            op.f(CHECK_NAME), "info_request", f"close_reason IN ({allowed})"
        )
    # Earlier code closed a request when a newer one folded it in, or when it was
    # answered; a request with a newer one was superseded, closed when that one was made
    # (if it was still open). The newest is then answered if closed, and if left open on
    # a referral no longer waiting: "resumed" if review went on, "left" otherwise.
    op.execute(
        """
        UPDATE info_request
        SET close_reason = 'superseded',
            closed_at = COALESCE(closed_at, (
                SELECT MIN(newer.requested_at) FROM info_request newer
                WHERE newer.referral_id = info_request.referral_id
                  AND newer.id > info_request.id
            )),
            next_reminder_at = NULL
        WHERE EXISTS (
            SELECT 1 FROM info_request newer
            WHERE newer.referral_id = info_request.referral_id
              AND newer.id > info_request.id
        )
        """
    )
    op.execute(
        "UPDATE info_request SET close_reason = 'answered' "
        "WHERE closed_at IS NOT NULL AND close_reason IS NULL"
    )
    op.execute(
        """
        UPDATE info_request
        SET close_reason = CASE
                WHEN (SELECT status FROM referral WHERE referral.id = info_request.referral_id)
                     IN ('in_review', 'submitted') THEN 'resumed'
                ELSE 'left'
            END,
            closed_at = (SELECT updated_at FROM referral
                         WHERE referral.id = info_request.referral_id),
            next_reminder_at = NULL
        WHERE closed_at IS NULL AND (
            SELECT status FROM referral WHERE referral.id = info_request.referral_id
        ) <> 'needs_info'
        """
    )


def downgrade() -> None:
    if op.get_context().dialect.name == "postgresql":
        op.drop_constraint(op.f(CHECK_NAME), "info_request", type_="check")
    op.drop_column("info_request", "close_reason")
