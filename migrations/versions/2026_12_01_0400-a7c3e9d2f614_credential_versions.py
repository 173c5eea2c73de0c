"""Sessions and FHIR tokens carry the credential version they were made under

Revision ID: a7c3e9d2f614
Revises: 5d2e8c1f4a07
Create Date: 2026-12-01 04:00:00+00:00

A password change ends every session of the user; a sign-in that had checked the old
password while the change committed used to insert its session after that, and keep
it. user_account.credential_version moves on with each new password, and a session
whose own copy differs is ended (accounts.sessions.session_state). The same for a FHIR
client's tokens and its secret or keys (fhir_client, fhir_access_token).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

TABLES = ("user_account", "user_session", "fhir_client", "fhir_access_token")
revision = "a7c3e9d2f614"
down_revision = "5d2e8c1f4a07"
branch_labels = None
depends_on = None


# Plain ALTER TABLE on both databases (SQLite adds and drops a column with a default
# in place): a batch copy of user_account could not drop the table its sessions,
# referrals and audit rows refer to.


def upgrade() -> None:
    for table in TABLES:
        op.add_column(
            table,
            sa.Column("credential_version", sa.Integer(), nullable=False, server_default="0"),
        )


def downgrade() -> None:
    for table in reversed(TABLES):
        op.drop_column(table, "credential_version")
