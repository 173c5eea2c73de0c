"""outbox messages carry a stable key

Revision ID: 17e134167ac0
Revises: 687f8f880c55
Create Date: 2026-11-30 12:00:00+00:00

Each outbox message gets a random key when it is written, the same on every attempt:
the email's Message-ID and the SMS provider's idempotency key, so a copy re-sent after
a crash is recognisably the same message. Existing rows get a fresh random key (UUID4
text) in the database itself, one statement on either database.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "17e134167ac0"
down_revision = "687f8f880c55"
branch_labels = None
depends_on = None

FILL_KEYS = {
    "postgresql": "UPDATE outbox_message SET message_key = gen_random_uuid()::text",
    # A version 4 UUID's text from SQLite's own random bytes (it has no UUID function).
    "sqlite": (
        "UPDATE outbox_message SET message_key = "
        "lower(hex(randomblob(4))) || '-' || lower(hex(randomblob(2))) || '-4' || "
        "substr(lower(hex(randomblob(2))), 2) || '-' || "
        "substr('89ab', 1 + (abs(random()) % 4), 1) || substr(lower(hex(randomblob(2))), 2) "
        "|| '-' || lower(hex(randomblob(6)))"
    ),
}


def upgrade() -> None:
    with op.batch_alter_table("outbox_message") as batch_op:
        batch_op.add_column(sa.Column("message_key", sa.String(length=36), nullable=True))
    op.execute(FILL_KEYS[op.get_bind().dialect.name])
    with op.batch_alter_table("outbox_message") as batch_op:
        batch_op.alter_column("message_key", existing_type=sa.String(length=36), nullable=False)
        batch_op.create_unique_constraint("uq_outbox_message_message_key", ["message_key"])


def downgrade() -> None:
    with op.batch_alter_table("outbox_message") as batch_op:
        batch_op.drop_constraint("uq_outbox_message_message_key", type_="unique")
        batch_op.drop_column("message_key")
