"""referral drafts: a form saved to finish later, and its documents

Revision ID: d9a4f1b3c726
Revises: c3f8d2e6a410
Create Date: 2026-11-30 10:20:00+00:00

A referring office interrupted mid-form saves it as a draft: the fields as typed (one
JSON object, unvalidated) and any documents, owned by the office. Submitting the
draft turns it into a referral and deletes it; the jobs process deletes drafts left
unsaved for DRAFT_DAYS.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from portal.models.base import UTCDateTime

revision = "d9a4f1b3c726"
down_revision = "c3f8d2e6a410"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "referral_draft",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("partner_id", sa.Integer(), nullable=False),
        sa.Column("fields", sa.JSON(), nullable=False),
        sa.Column("created_by_id", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("saved_by_id", sa.Integer(), nullable=False),
        sa.Column("saved_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["partner_id"], ["partner.id"], name=op.f("fk_referral_draft_partner_id_partner")
        ),
        sa.ForeignKeyConstraint(
            ["created_by_id"],
            ["user_account.id"],
            name=op.f("fk_referral_draft_created_by_id_user_account"),
        ),
        sa.ForeignKeyConstraint(
            ["saved_by_id"],
            ["user_account.id"],
            name=op.f("fk_referral_draft_saved_by_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_draft")),
    )
    with op.batch_alter_table("referral_draft") as batch_op:
        batch_op.create_index(
            "ix_referral_draft_partner_saved", ["partner_id", "saved_at"], unique=False
        )
        batch_op.create_index(op.f("ix_referral_draft_saved_at"), ["saved_at"], unique=False)

    op.create_table(
        "referral_draft_document",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("draft_id", sa.Integer(), nullable=False),
        sa.Column("required_item_id", sa.Integer(), nullable=True),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("content_type", sa.String(length=40), nullable=False),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=True),
        sa.Column("uploaded_by_id", sa.Integer(), nullable=False),
        sa.Column("uploaded_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["draft_id"],
            ["referral_draft.id"],
            name=op.f("fk_referral_draft_document_draft_id_referral_draft"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["required_item_id"],
            ["required_item.id"],
            name=op.f("fk_referral_draft_document_required_item_id_required_item"),
        ),
        sa.ForeignKeyConstraint(
            ["uploaded_by_id"],
            ["user_account.id"],
            name=op.f("fk_referral_draft_document_uploaded_by_id_user_account"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_draft_document")),
    )
    with op.batch_alter_table("referral_draft_document") as batch_op:
        batch_op.create_index(
            op.f("ix_referral_draft_document_draft_id"), ["draft_id"], unique=False
        )


def downgrade() -> None:
    op.drop_table("referral_draft_document")
    op.drop_table("referral_draft")
