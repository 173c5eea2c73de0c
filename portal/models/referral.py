"""The referral and what hangs off it: required items, documents, outreach attempts."""

from __future__ import annotations

import enum
from datetime import date, datetime
from typing import TYPE_CHECKING

from sqlalchemy import (
    Computed,
    Date,
    ForeignKey,
    Index,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from portal.clock import utcnow
from portal.models.base import Base, enum_column
from portal.models.partner import Partner
from portal.models.service_line import ItemKind, RequiredItem, ServiceLine
from portal.models.stored_file import StoredFile
from portal.models.user import User

if TYPE_CHECKING:
    from portal.models.sla import SlaClock


class Status(enum.StrEnum):
    SUBMITTED = "submitted"
    NEEDS_INFO = "needs_info"
    IN_REVIEW = "in_review"
    ACCEPTED = "accepted"
    SCHEDULED = "scheduled"
    COMPLETED = "completed"
    NO_SHOW = "no_show"
    DECLINED = "declined"
    REDIRECTED = "redirected"
    UNREACHABLE = "unreachable"
    WITHDRAWN = "withdrawn"

    @property
    def label(self) -> str:
        return STATUS_LABELS[self]

    @property
    def is_final(self) -> bool:
        return self in FINAL_STATUSES


STATUS_LABELS = {
    Status.SUBMITTED: "Submitted",
    Status.NEEDS_INFO: "Needs information",
    Status.IN_REVIEW: "In review",
    Status.ACCEPTED: "Accepted",
    Status.SCHEDULED: "Scheduled",
    Status.COMPLETED: "Completed",
    Status.NO_SHOW: "No-show",
    Status.DECLINED: "Declined",
    Status.REDIRECTED: "Redirected",
    Status.UNREACHABLE: "Patient unreachable",
    Status.WITHDRAWN: "Withdrawn",
}

# No further work is expected on a referral in one of these.
FINAL_STATUSES = frozenset(
    {Status.COMPLETED, Status.DECLINED, Status.REDIRECTED, Status.UNREACHABLE, Status.WITHDRAWN}
)
OPEN_STATUSES = frozenset(Status) - FINAL_STATUSES


class Urgency(enum.StrEnum):
    URGENT = "urgent"
    ROUTINE = "routine"


# The staff queue's order as one indexable number, computed by the database from the
# status and urgency so it can never disagree with them: urgent open work, then
# routine open work, then everything settled. Oldest first within each rank.
URGENT_OPEN_RANK, ROUTINE_OPEN_RANK, SETTLED_RANK = 0, 1, 2
QUEUE_RANK_SQL = (
    "CASE WHEN status IN ({settled}) THEN {settled_rank} "
    "WHEN urgency = '{urgent_value}' THEN {urgent} ELSE {routine} END"
).format(
    settled=", ".join(f"'{status.value}'" for status in sorted(FINAL_STATUSES)),
    settled_rank=SETTLED_RANK,
    urgent_value=Urgency.URGENT.value,
    urgent=URGENT_OPEN_RANK,
    routine=ROUTINE_OPEN_RANK,
)


class ContactMethod(enum.StrEnum):
    PHONE = "phone"
    SMS = "sms"
    EMAIL = "email"


class PatientLanguage(enum.StrEnum):
    """The language the patient reads: their pages open in it and their messages use it."""

    ENGLISH = "en"
    SPANISH = "es"

    @property
    def label(self) -> str:
        # Each in its own language too, so a patient reading over a shoulder finds theirs.
        return {"en": "English", "es": "Spanish (Español)"}[self.value]


class Channel(enum.StrEnum):
    PORTAL = "portal"
    PHONE = "phone"
    FAX = "fax"
    EMAIL = "email"
    STAFF = "staff"


class AppointmentMode(enum.StrEnum):
    VIDEO = "video"
    PHONE = "phone"


class OutreachResult(enum.StrEnum):
    REACHED = "reached"
    NO_ANSWER = "no_answer"
    LEFT_MESSAGE = "left_message"
    WRONG_NUMBER = "wrong_number"


class OutcomeClass(enum.StrEnum):
    """What partners are told, in the words of the feedback protocol."""

    PENDING = "pending"
    STARTED_CARE = "started_care"
    REDIRECTED = "redirected"
    NOT_ELIGIBLE = "not_eligible"
    CLOSED = "closed"  # withdrawn or the patient could not be reached

    @property
    def label(self) -> str:
        return OUTCOME_LABELS[self]


OUTCOME_LABELS = {
    OutcomeClass.PENDING: "Pending",
    OutcomeClass.STARTED_CARE: "Started care",
    OutcomeClass.REDIRECTED: "Redirected",
    OutcomeClass.NOT_ELIGIBLE: "Not eligible",
    OutcomeClass.CLOSED: "Closed",
}

OUTCOME_BY_STATUS = {
    Status.COMPLETED: OutcomeClass.STARTED_CARE,
    Status.REDIRECTED: OutcomeClass.REDIRECTED,
    Status.DECLINED: OutcomeClass.NOT_ELIGIBLE,
    Status.UNREACHABLE: OutcomeClass.CLOSED,
    Status.WITHDRAWN: OutcomeClass.CLOSED,
}


# What a period's figures read besides the submission time, carried in the cohort
# indexes so that the figures come from the index alone, not from the table.
COHORT_COLUMNS = (
    "partner_id",
    "status",
    "first_touch_at",
    "needs_info_at",
    "triaged_at",
    "patient_reached_at",
    "scheduled_at",
)


class Referral(Base):
    __tablename__ = "referral"
    __table_args__ = (
        # A form submitted twice (double click, back and resubmit) carries the same token.
        UniqueConstraint("partner_id", "submission_token"),
        # The queue reads these in order and stops at a page: no sort, whatever the size.
        Index("ix_referral_queue_rank", "queue_rank", "submitted_at", "id"),
        Index("ix_referral_status_queue_rank", "status", "queue_rank", "submitted_at", "id"),
        Index("ix_referral_partner_queue_rank", "partner_id", "queue_rank", "submitted_at", "id"),
        # A partner's list (newest first) and, covering, its dashboard's cohort figures.
        Index("ix_referral_partner_cohort", "partner_id", "submitted_at", *COHORT_COLUMNS[1:]),
        Index("ix_referral_appointment", "status", "appointment_at"),
        # The scorecard's cohorts: by submission, and by outcome, across all partners.
        # Covering: a period's cohort figures read this index alone, not the table.
        Index("ix_referral_cohort", "submitted_at", *COHORT_COLUMNS),
        Index("ix_referral_outcome_at", "outcome_at", "partner_id", "submitted_at"),
        Index("ix_referral_partner_outcome", "partner_id", "outcome_at", "submitted_at"),
        # The partner's unread-updates badge looks at recently updated referrals only;
        # with the id in it, PostgreSQL walks the index alone (8.7 to 2.9 ms at 1M).
        Index("ix_referral_partner_updated", "partner_id", "updated_at", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Random, public reference such as R-7K3M-9QXD; the only identifier in URLs.
    reference: Mapped[str] = mapped_column(String(11), unique=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partner.id"))
    service_line_id: Mapped[int] = mapped_column(ForeignKey("service_line.id"), index=True)
    status: Mapped[Status] = mapped_column(enum_column(Status, "referral_status"))
    urgency: Mapped[Urgency] = mapped_column(enum_column(Urgency, "urgency"))
    # Virtual on SQLite, stored on PostgreSQL; see QUEUE_RANK_SQL.
    queue_rank: Mapped[int] = mapped_column(Computed(QUEUE_RANK_SQL))

    referring_provider_name: Mapped[str] = mapped_column(String(120))
    referring_provider_npi: Mapped[str] = mapped_column(String(10))

    patient_first_name: Mapped[str] = mapped_column(String(100))
    patient_last_name: Mapped[str] = mapped_column(String(100))
    patient_date_of_birth: Mapped[date] = mapped_column(Date)
    patient_phone: Mapped[str | None] = mapped_column(String(20))
    patient_email: Mapped[str | None] = mapped_column(String(254))
    preferred_contact: Mapped[ContactMethod] = mapped_column(
        enum_column(ContactMethod, "contact_method")
    )
    patient_language: Mapped[PatientLanguage] = mapped_column(
        enum_column(PatientLanguage, "patient_language"),
        default=PatientLanguage.ENGLISH,
        server_default=PatientLanguage.ENGLISH.value,
    )

    reason: Mapped[str] = mapped_column(String(500))
    clinical_context: Mapped[str] = mapped_column(Text, default="")
    source_channel: Mapped[Channel] = mapped_column(enum_column(Channel, "channel"))
    source_code: Mapped[str | None] = mapped_column(String(40))

    submitted_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    submission_token: Mapped[str] = mapped_column(String(64))
    # The same office's earlier referral for the same patient (name and date of birth,
    # within DUPLICATE_WINDOW_DAYS), submitted anyway: staff see a mark in the queue.
    # No foreign key: SQLite could then neither drop the column in place nor copy the
    # table (the generated queue_rank); referrals are never deleted.
    possible_duplicate_of_id: Mapped[int | None]
    submitted_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When the patient's latest link locked after wrong dates of birth: intake's queue
    # marks the referral until a new link goes out (which clears it).
    patient_locked_out_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)

    # Milestones, set once by the workflow; the SLA clocks and the scorecard read them.
    first_touch_at: Mapped[datetime | None]
    triaged_at: Mapped[datetime | None]
    # The first time intake asked for more information (the incomplete-referral rate).
    needs_info_at: Mapped[datetime | None]
    patient_reached_at: Mapped[datetime | None]
    scheduled_at: Mapped[datetime | None]
    outcome_at: Mapped[datetime | None]

    assigned_provider: Mapped[str | None] = mapped_column(String(120))
    decline_reason: Mapped[str | None] = mapped_column(String(300))
    redirect_destination: Mapped[str | None] = mapped_column(String(200))
    appointment_at: Mapped[datetime | None]
    appointment_mode: Mapped[AppointmentMode | None] = mapped_column(
        enum_column(AppointmentMode, "appointment_mode")
    )
    # The day-before reminder; cleared when the visit is moved.
    appointment_reminder_sent_at: Mapped[datetime | None]

    # Optimistic locking: a stale write raises instead of overwriting someone else's.
    version: Mapped[int] = mapped_column(default=1)
    __mapper_args__ = {"version_id_col": version}

    partner: Mapped[Partner] = relationship()
    service_line: Mapped[ServiceLine] = relationship()
    submitted_by: Mapped[User] = relationship()
    items: Mapped[list[ReferralItem]] = relationship(
        back_populates="referral", order_by="ReferralItem.id", cascade="all, delete-orphan"
    )
    documents: Mapped[list[Document]] = relationship(
        back_populates="referral", order_by="Document.id", cascade="all, delete-orphan"
    )
    outreach_attempts: Mapped[list[OutreachAttempt]] = relationship(
        back_populates="referral", order_by="OutreachAttempt.at", cascade="all, delete-orphan"
    )
    # The stage clock now running or paused (none once the referral is settled).
    active_clock: Mapped[SlaClock | None] = relationship(
        primaryjoin="and_(Referral.id == SlaClock.referral_id, SlaClock.stopped_at.is_(None))",
        viewonly=True,
        uselist=False,
    )
    # Read for the "possible duplicate" mark; set through possible_duplicate_of_id.
    possible_duplicate_of: Mapped[Referral | None] = relationship(
        primaryjoin="foreign(Referral.possible_duplicate_of_id) == remote(Referral.id)",
        viewonly=True,
    )

    @property
    def outcome_class(self) -> OutcomeClass:
        return OUTCOME_BY_STATUS.get(self.status, OutcomeClass.PENDING)

    @property
    def patient_name(self) -> str:
        return f"{self.patient_first_name} {self.patient_last_name}"

    @property
    def missing_items(self) -> list[ReferralItem]:
        return [item for item in self.items if not item.is_provided]

    def __repr__(self) -> str:  # never patient data
        return f"<Referral {self.reference} {self.status}>"


class ReferralItem(Base):
    """One required item on one referral: provided at submission or still missing."""

    __tablename__ = "referral_item"

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referral.id"), index=True)
    # Null for items staff add by hand when they ask for more information.
    required_item_id: Mapped[int | None] = mapped_column(ForeignKey("required_item.id"))
    # The needs-info request that asked for it (none: provided with the referral).
    info_request_id: Mapped[int | None] = mapped_column(ForeignKey("info_request.id"), index=True)
    label: Mapped[str] = mapped_column(String(120))
    kind: Mapped[ItemKind] = mapped_column(enum_column(ItemKind, "item_kind"))
    answer: Mapped[str | None] = mapped_column(Text)
    document_id: Mapped[int | None] = mapped_column(ForeignKey("document.id"))
    provided_at: Mapped[datetime | None]

    referral: Mapped[Referral] = relationship(back_populates="items")
    required_item: Mapped[RequiredItem | None] = relationship()
    document: Mapped[Document | None] = relationship(foreign_keys=[document_id])

    @property
    def is_provided(self) -> bool:
        return self.provided_at is not None


class Document(StoredFile, Base):
    """A supporting document. Stored in the database so every web node sees it."""

    __tablename__ = "document"

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referral.id"), index=True)

    referral: Mapped[Referral] = relationship(back_populates="documents")


class OutreachAttempt(Base):
    """One try at reaching the patient, whatever its result."""

    __tablename__ = "outreach_attempt"
    # The referral's attempts in order; the first one's time straight from the index.
    __table_args__ = (Index("ix_outreach_attempt_referral_at", "referral_id", "at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    referral_id: Mapped[int] = mapped_column(ForeignKey("referral.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    actor_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    channel: Mapped[ContactMethod] = mapped_column(enum_column(ContactMethod, "contact_method"))
    result: Mapped[OutreachResult] = mapped_column(enum_column(OutreachResult, "outreach_result"))
    note: Mapped[str] = mapped_column(String(500), default="")

    referral: Mapped[Referral] = relationship(back_populates="outreach_attempts")
    actor: Mapped[User] = relationship(lazy="joined")
