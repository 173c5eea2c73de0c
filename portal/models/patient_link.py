"""Signed links that let a patient confirm a next step without an account."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.clock import utcnow
from portal.models.base import Base, enum_column
from portal.models.referral import AppointmentMode, ContactMethod


class PatientAnswer(enum.StrEnum):
    SLOT = "slot"
    CALL_ME = "call_me"
    DECLINE = "decline"


class PatientLink(Base):
    """One link sent to one patient. The emailed token carries only `public_id`; this row
    makes the link single-use, revocable and lockable."""

    __tablename__ = "patient_link"
    __table_args__ = (Index("ix_patient_link_referral", "referral_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referral.id"))
    purpose: Mapped[str] = mapped_column(String(40))
    sent_by_id: Mapped[int | None] = mapped_column(ForeignKey("user_account.id"))
    sent_via: Mapped[ContactMethod] = mapped_column(enum_column(ContactMethod, "contact_method"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    failed_attempts: Mapped[int] = mapped_column(default=0)
    locked_at: Mapped[datetime | None]
    # The reminder job's state: reminders while unanswered, then a flag to phone.
    reminders_sent: Mapped[int] = mapped_column(default=0)
    next_reminder_at: Mapped[datetime | None] = mapped_column(index=True)
    phone_outreach_flagged_at: Mapped[datetime | None]

    answer: Mapped[PatientAnswer | None] = mapped_column(enum_column(PatientAnswer, "answer"))
    answer_contact: Mapped[ContactMethod | None] = mapped_column(
        enum_column(ContactMethod, "answer_contact")
    )

    slots: Mapped[list[SlotOffer]] = relationship(
        back_populates="link", order_by="SlotOffer.starts_at"
    )

    @property
    def chosen_slot(self) -> SlotOffer | None:
        return next((slot for slot in self.slots if slot.chosen_at), None)

    def slots_ahead(self, now: datetime) -> list[SlotOffer]:
        """The offered times that have not passed: the only ones a patient may pick."""
        return [slot for slot in self.slots if slot.starts_at > now]

    def offered_times_passed(self, now: datetime) -> bool:
        """Times were offered and every one has passed: the patient has none to pick."""
        return bool(self.slots) and not self.slots_ahead(now)


class SlotOffer(Base):
    """An appointment time intake offered through a link."""

    __tablename__ = "slot_offer"

    id: Mapped[int] = mapped_column(primary_key=True)
    link_id: Mapped[int] = mapped_column(ForeignKey("patient_link.id"), index=True)
    starts_at: Mapped[datetime]
    mode: Mapped[AppointmentMode] = mapped_column(enum_column(AppointmentMode, "mode"))
    chosen_at: Mapped[datetime | None]

    link: Mapped[PatientLink] = relationship(back_populates="slots")
