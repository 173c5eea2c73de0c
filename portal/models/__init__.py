"""All models, importable from one place (Alembic's autogenerate reads this metadata)."""

from portal.models.audit import AuditEntry
from portal.models.base import Base
from portal.models.clarification import InfoRequest
from portal.models.consent import Consent, ConsentKind
from portal.models.event import ReferralEvent
from portal.models.outbox import MessageChannel, MessageStatus, OutboxMessage
from portal.models.partner import Partner
from portal.models.patient_link import PatientAnswer, PatientLink, SlotOffer
from portal.models.referral import (
    FINAL_STATUSES,
    OPEN_STATUSES,
    AppointmentMode,
    Channel,
    ContactMethod,
    Document,
    OutcomeClass,
    OutreachAttempt,
    OutreachResult,
    Referral,
    ReferralItem,
    Status,
    Urgency,
)
from portal.models.referral_view import ReferralView
from portal.models.service_line import ItemKind, RequiredItem, ServiceLine
from portal.models.user import STAFF_ROLES, Invitation, Role, SignInAttempt, User

__all__ = [
    "FINAL_STATUSES",
    "OPEN_STATUSES",
    "STAFF_ROLES",
    "AppointmentMode",
    "AuditEntry",
    "Base",
    "Channel",
    "Consent",
    "ConsentKind",
    "ContactMethod",
    "Document",
    "InfoRequest",
    "Invitation",
    "ItemKind",
    "MessageChannel",
    "MessageStatus",
    "OutboxMessage",
    "OutcomeClass",
    "OutreachAttempt",
    "OutreachResult",
    "Partner",
    "PatientAnswer",
    "PatientLink",
    "Referral",
    "ReferralEvent",
    "ReferralItem",
    "ReferralView",
    "RequiredItem",
    "Role",
    "ServiceLine",
    "SignInAttempt",
    "SlotOffer",
    "Status",
    "Urgency",
    "User",
]
