"""FHIR clients, their tokens, used assertions, answered messages and rate windows

Revision ID: c4f1d2a8e6b0
Revises: 8b3e5f27a9d1
Create Date: 2026-11-30 18:00:00+00:00

- fhir_client: a partner's EHR (keys or a secret's hash, scopes), acting as a user row
  of its own; fhir_access_token: its short-lived bearer tokens (hashes only);
  fhir_assertion: the `jti`s of client assertions already used; fhir_message: each
  processed message's answer by MessageHeader id; fhir_rate_window: calls per minute.
- service_line gains the FHIR coding (system, code) an EHR names it by.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from portal.models.base import UTCDateTime

revision = "c4f1d2a8e6b0"
down_revision = "8b3e5f27a9d1"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "fhir_client",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=120), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("secret_hash", sa.String(length=255), nullable=True),
        sa.Column("jwks", sa.JSON(), nullable=True),
        sa.Column("jwks_url", sa.String(length=500), nullable=True),
        sa.Column("scopes", sa.String(length=500), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=True),
        sa.Column("rotated_at", UTCDateTime(), nullable=True),
        sa.Column("revoked_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_fhir_client_created_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partner.id"], name=op.f("fk_fhir_client_partner_id_partner")
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["user_account.id"], name=op.f("fk_fhir_client_user_id_user_account")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fhir_client")),
        sa.UniqueConstraint("client_id", name=op.f("uq_fhir_client_client_id")),
        sa.UniqueConstraint("user_id", name=op.f("uq_fhir_client_user_id")),
    )
    op.create_index(op.f("ix_fhir_client_partner_id"), "fhir_client", ["partner_id"])
    op.create_table(
        "fhir_access_token",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("scopes", sa.String(length=500), nullable=False),
        sa.Column("issued_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["fhir_client.id"],
            name=op.f("fk_fhir_access_token_client_id_fhir_client"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fhir_access_token")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_fhir_access_token_token_hash")),
    )
    op.create_index(op.f("ix_fhir_access_token_client_id"), "fhir_access_token", ["client_id"])
    op.create_index(op.f("ix_fhir_access_token_expires_at"), "fhir_access_token", ["expires_at"])
    op.create_table(
        "fhir_assertion",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("jti", sa.String(length=255), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["fhir_client.id"],
            name=op.f("fk_fhir_assertion_client_id_fhir_client"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fhir_assertion")),
        sa.UniqueConstraint("client_id", "jti", name=op.f("uq_fhir_assertion_client_id_jti")),
    )
    op.create_index(op.f("ix_fhir_assertion_expires_at"), "fhir_assertion", ["expires_at"])
    op.create_table(
        "fhir_message",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("header_id", sa.String(length=64), nullable=False),
        sa.Column("event", sa.String(length=64), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=False),
        sa.Column("referral_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["fhir_client.id"],
            name=op.f("fk_fhir_message_client_id_fhir_client"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["referral_id"], ["referral.id"], name=op.f("fk_fhir_message_referral_id_referral")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_fhir_message")),
        sa.UniqueConstraint(
            "client_id", "header_id", name=op.f("uq_fhir_message_client_id_header_id")
        ),
    )
    op.create_index(op.f("ix_fhir_message_referral_id"), "fhir_message", ["referral_id"])
    op.create_table(
        "fhir_rate_window",
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("window_start", UTCDateTime(), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["fhir_client.id"],
            name=op.f("fk_fhir_rate_window_client_id_fhir_client"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("client_id", "window_start", name=op.f("pk_fhir_rate_window")),
    )
    op.add_column("service_line", sa.Column("fhir_system", sa.String(length=200), nullable=True))
    op.add_column("service_line", sa.Column("fhir_code", sa.String(length=64), nullable=True))
    op.create_index(
        "ix_service_line_fhir_coding", "service_line", ["fhir_system", "fhir_code"], unique=True
    )


def downgrade() -> None:
    op.drop_index("ix_service_line_fhir_coding", table_name="service_line")
    op.drop_column("service_line", "fhir_code")
    op.drop_column("service_line", "fhir_system")
    op.drop_table("fhir_rate_window")
    op.drop_index(op.f("ix_fhir_message_referral_id"), table_name="fhir_message")
    op.drop_table("fhir_message")
    op.drop_index(op.f("ix_fhir_assertion_expires_at"), table_name="fhir_assertion")
    op.drop_table("fhir_assertion")
    op.drop_index(op.f("ix_fhir_access_token_expires_at"), table_name="fhir_access_token")
    op.drop_index(op.f("ix_fhir_access_token_client_id"), table_name="fhir_access_token")
    op.drop_table("fhir_access_token")
    op.drop_index(op.f("ix_fhir_client_partner_id"), table_name="fhir_client")
    op.drop_table("fhir_client")
