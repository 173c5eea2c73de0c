"""outbox messages carry one text attachment

Revision ID: 687f8f880c55
Revises: e6a2d8c4f913
Create Date: 2026-11-30 11:10:00+00:00

A visit's confirmation email carries the visit as a calendar file. The attachment is
rendered with the message and stored on its outbox row (a name and a text body), so
it is written in the same transaction as the change and delivery only reads the row.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "687f8f880c55"
down_revision = "e6a2d8c4f913"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_message") as batch_op:
        batch_op.add_column(sa.Column("attachment_name", sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column("attachment_body", sa.Text(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outbox_message") as batch_op:
        batch_op.drop_column("attachment_body")
        batch_op.drop_column("attachment_name")
