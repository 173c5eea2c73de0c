"""outbox messages can be cancelled, and an unreachable provider costs no attempt

Revision ID: 3b9d7e2a5c18
Revises: a7c3e9d2f614
Create Date: 2026-12-01 09:00:00+00:00

A reminder held up in the outbox used to go out after what it reminded about was
settled; it is now cancelled instead (status 'cancelled', kept like every message),
and `regarding_id` names the row it is about (the information request, the patient
link). A mail outage used to use up every message's attempts and dead-letter them in
about two hours; runs that found the provider unreachable are now counted apart, in
`unreachable_tries`, which backs off but never dead-letters.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "3b9d7e2a5c18"
down_revision = "a7c3e9d2f614"
branch_labels = None
depends_on = None

CHECK_NAME = "ck_outbox_message_message_status"
OLD_STATUSES = ("pending", "sent", "dead")
NEW_STATUSES = (*OLD_STATUSES, "cancelled")


def _allowed(statuses: tuple[str, ...]) -> str:
    return "status IN ({})".format(", ".join(f"'{status}'" for status in statuses))


# Batch mode: SQLite rewrites a CHECK only by copying the table, which nothing refers to.
def upgrade() -> None:
    with op.batch_alter_table("outbox_message") as batch_op:
        batch_op.drop_constraint(op.f(CHECK_NAME), type_="check")
        batch_op.alter_column(
            "status", existing_type=sa.String(length=7), type_=sa.String(length=9)
        )
        batch_op.create_check_constraint(op.f(CHECK_NAME), _allowed(NEW_STATUSES))
        batch_op.add_column(sa.Column("regarding_id", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("unreachable_tries", sa.Integer(), nullable=False, server_default="0")
        )


def downgrade() -> None:
    # The old schema has no cancelled status: such messages become dead letters, which an
    # admin sees and may retry (never 'sent', which they were not).
    op.execute("UPDATE outbox_message SET status = 'dead' WHERE status = 'cancelled'")
    with op.batch_alter_table("outbox_message") as batch_op:
        batch_op.drop_column("unreachable_tries")
        batch_op.drop_column("regarding_id")
        batch_op.drop_constraint(op.f(CHECK_NAME), type_="check")
        batch_op.alter_column(
            "status", existing_type=sa.String(length=9), type_=sa.String(length=7)
        )
        batch_op.create_check_constraint(op.f(CHECK_NAME), _allowed(OLD_STATUSES))
