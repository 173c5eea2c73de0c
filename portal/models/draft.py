"""Referral drafts: a form a referring office saved to finish later, with its documents.

A draft holds what was typed, unvalidated (only bounded like any form input), so it
has no referral columns: the fields are one JSON object, keyed by form field name.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.clock import utcnow
from portal.models.base import Base
from portal.models.service_line import RequiredItem
from portal.models.stored_file import StoredFile
from portal.models.user import User


class ReferralDraft(Base):
    __tablename__ = "referral_draft"
    # The office's drafts, last saved first.
    __table_args__ = (Index("ix_referral_draft_partner_saved", "partner_id", "saved_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partner.id"))
    # Form field name -> what was typed (text, or true for a ticked box); empty fields
    # are left out. Patient data: shown to the office only, never logged or audited.
    fields: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    saved_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    # Drafts expire DRAFT_DAYS after their last save (the jobs process deletes them).
    saved_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)

    created_by: Mapped[User] = relationship(foreign_keys=[created_by_id])
    saved_by: Mapped[User] = relationship(foreign_keys=[saved_by_id])
    documents: Mapped[list[DraftDocument]] = relationship(
        back_populates="draft",
        order_by="DraftDocument.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    @property
    def patient_name(self) -> str:
        """The patient's name as far as it was typed ("" when not yet)."""
        parts = (self.fields.get("patient_first_name"), self.fields.get("patient_last_name"))
        return " ".join(part for part in parts if isinstance(part, str) and part)

    def __repr__(self) -> str:  # never patient data
        return f"<ReferralDraft {self.id} partner {self.partner_id}>"


class DraftDocument(StoredFile, Base):
    """A document attached to a draft: it becomes the referral's on submission."""

    __tablename__ = "referral_draft_document"

    id: Mapped[int] = mapped_column(primary_key=True)
    draft_id: Mapped[int] = mapped_column(
        ForeignKey("referral_draft.id", ondelete="CASCADE"), index=True
    )
    # The service line's required item it was uploaded for; none for a supporting one.
    required_item_id: Mapped[int | None] = mapped_column(ForeignKey("required_item.id"))

    draft: Mapped[ReferralDraft] = relationship(back_populates="documents")
    required_item: Mapped[RequiredItem | None] = relationship()
