"""server-side sessions, second factor, password resets, attempt kinds

Revision ID: a9c4e1f7b2d3
Revises: e5f9b3d7c0a2
Create Date: 2026-11-30 09:00:00+00:00

Sessions move from a signed cookie to rows (the cookie keeps only a random token), so
signing out, disabling an account or changing a password ends them at once. Staff
sign in with a TOTP second factor and recovery codes; anyone can reset a forgotten
password by email. Sign-in attempts gain a kind, so second-factor codes and reset
requests are throttled by the same rules as passwords.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from portal.models.base import UTCDateTime

revision = "a9c4e1f7b2d3"
down_revision = "e5f9b3d7c0a2"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("user_account") as batch_op:
        batch_op.add_column(sa.Column("totp_secret", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("totp_enabled_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("totp_last_step", sa.BigInteger(), nullable=True))
    with op.batch_alter_table("partner") as batch_op:
        batch_op.add_column(
            sa.Column(
                "require_second_factor",
                sa.Boolean(),
                nullable=False,
                server_default=sa.false(),
            )
        )
    with op.batch_alter_table("sign_in_attempt") as batch_op:
        batch_op.add_column(
            sa.Column(
                "kind",
                sa.Enum(
                    "password",
                    "second_factor",
                    "password_reset",
                    name="attempt_kind",
                    native_enum=False,
                    create_constraint=True,
                    length=14,
                ),
                nullable=False,
                server_default="password",
            )
        )
        batch_op.create_index(
            "ix_sign_in_attempt_email_address_at", ["email", "address", "at"], unique=False
        )

    op.create_table(
        "user_session",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("authenticated", sa.Boolean(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", UTCDateTime(), nullable=False),
        sa.Column("idle_expires_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("user_agent", sa.String(length=255), nullable=False),
        sa.Column("address", sa.String(length=64), nullable=False),
        sa.Column("pending_totp_secret", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_user_session_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_user_session")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_user_session_token_hash")),
    )
    with op.batch_alter_table("user_session") as batch_op:
        batch_op.create_index(op.f("ix_user_session_user_id"), ["user_id"], unique=False)
        batch_op.create_index(
            op.f("ix_user_session_idle_expires_at"), ["idle_expires_at"], unique=False
        )
        batch_op.create_index(op.f("ix_user_session_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "recovery_code",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_recovery_code_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recovery_code")),
    )
    with op.batch_alter_table("recovery_code") as batch_op:
        batch_op.create_index(op.f("ix_recovery_code_user_id"), ["user_id"], unique=False)

    op.create_table(
        "password_reset",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("used_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.Column("requested_from", sa.String(length=64), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"],
            ["user_account.id"],
            name=op.f("fk_password_reset_user_id_user_account"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_password_reset")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_password_reset_token_hash")),
    )
    with op.batch_alter_table("password_reset") as batch_op:
        batch_op.create_index(op.f("ix_password_reset_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    op.drop_table("password_reset")
    op.drop_table("recovery_code")
    op.drop_table("user_session")
    with op.batch_alter_table("sign_in_attempt") as batch_op:
        batch_op.drop_index("ix_sign_in_attempt_email_address_at")
        batch_op.drop_constraint(op.f("ck_sign_in_attempt_attempt_kind"), type_="check")
        batch_op.drop_column("kind")
    with op.batch_alter_table("partner") as batch_op:
        batch_op.drop_column("require_second_factor")
    with op.batch_alter_table("user_account") as batch_op:
        batch_op.drop_column("totp_last_step")
        batch_op.drop_column("totp_enabled_at")
        batch_op.drop_column("totp_secret")
