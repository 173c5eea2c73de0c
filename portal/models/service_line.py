"""Service lines: what a partner can refer for, who is eligible, what a referral needs."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.models.base import Base, enum_column


class ItemKind(enum.StrEnum):
    DOCUMENT = "document"  # satisfied by an uploaded PDF/PNG/JPEG
    ANSWER = "answer"  # satisfied by a written answer


class ServiceLine(Base):
    __tablename__ = "service_line"
    __table_args__ = (
        Index("ix_service_line_fhir_coding", "fhir_system", "fhir_code", unique=True),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)
    description: Mapped[str] = mapped_column(String(500), default="")
    # Shown to partners on the form, one criterion per line.
    eligibility_criteria: Mapped[str] = mapped_column(Text, default="")
    active: Mapped[bool] = mapped_column(default=True)
    # The referral packet partners read beside the form and print (seed 002): what we
    # treat, how to submit, what happens after (besides the SLA promises, which are
    # written from the targets themselves) and whom to call. Plain text, a paragraph or
    # a list item per line.
    packet_treats: Mapped[str] = mapped_column(Text, default="", server_default="")
    packet_how_to_submit: Mapped[str] = mapped_column(Text, default="", server_default="")
    packet_after: Mapped[str] = mapped_column(Text, default="", server_default="")
    packet_contacts: Mapped[str] = mapped_column(Text, default="", server_default="")
    packet_updated_at: Mapped[datetime | None]
    # How an EHR names this service line in a FHIR ServiceRequest.code (a coding's
    # system and code, e.g. SNOMED CT's 183519002 "Referral to cardiology service"), set
    # by an admin; a referral whose code matches no active service line is refused.
    fhir_system: Mapped[str | None] = mapped_column(String(200))
    fhir_code: Mapped[str | None] = mapped_column(String(64))

    # What a new referral must carry now. Retired items stay in the database (old
    # referrals point at them) and are edited through `all_required_items`.
    required_items: Mapped[list[RequiredItem]] = relationship(
        primaryjoin="and_(ServiceLine.id == RequiredItem.service_line_id, RequiredItem.active)",
        order_by="RequiredItem.position",
        viewonly=True,
    )
    all_required_items: Mapped[list[RequiredItem]] = relationship(
        back_populates="service_line",
        order_by="RequiredItem.position",
        cascade="all, delete-orphan",
    )

    @property
    def criteria_list(self) -> list[str]:
        return [line.strip() for line in self.eligibility_criteria.splitlines() if line.strip()]


class RequiredItem(Base):
    """Something a referral for this service line must carry to be complete."""

    __tablename__ = "required_item"

    id: Mapped[int] = mapped_column(primary_key=True)
    service_line_id: Mapped[int] = mapped_column(ForeignKey("service_line.id"), index=True)
    label: Mapped[str] = mapped_column(String(120))
    kind: Mapped[ItemKind] = mapped_column(enum_column(ItemKind, "item_kind"))
    help_text: Mapped[str] = mapped_column(String(300), default="")
    position: Mapped[int] = mapped_column(default=0)
    active: Mapped[bool] = mapped_column(default=True)

    service_line: Mapped[ServiceLine] = relationship(back_populates="all_required_items")
