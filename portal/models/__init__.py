"""All models, importable from one place (Alembic's autogenerate reads this metadata)."""

from portal.models.audit import AuditEntry
from portal.models.base import Base
from portal.models.consent import Consent, ConsentKind
from portal.models.draft import DraftDocument, ReferralDraft
from portal.models.event import ReferralEvent
from portal.models.fhir import (
    FHIR_SCOPES,
    FhirAccessToken,
    FhirAssertion,
    FhirClient,
    FhirMessage,
    FhirRateWindow,
)
from portal.models.job_state import JobState
from portal.models.needs_info import CloseReason, InfoRequest
from portal.models.outbox import MessageChannel, MessageStatus, OutboxMessage
from portal.models.partner import Partner
from portal.models.patient_link import PatientAnswer, PatientLink, SlotOffer
from portal.models.referral import (
    FINAL_STATUSES,
    OPEN_STATUSES,
    SETTLED_RANK,
    AppointmentMode,
    Channel,
    ContactMethod,
    Document,
    OutcomeClass,
    OutreachAttempt,
    OutreachResult,
    PatientLanguage,
    Referral,
    ReferralItem,
    Status,
    Urgency,
)
from portal.models.referral_view import ReferralView
from portal.models.scorecard import ProcessRating, ScorecardEpoch, ScorecardSnapshot
from portal.models.service_line import ItemKind, RequiredItem, ServiceLine
from portal.models.sla import (
    STAGE_OWNERS,
    BusinessHours,
    Holiday,
    SlaClock,
    SlaStage,
    SlaTarget,
)
from portal.models.user import (
    STAFF_ROLES,
    AttemptKind,
    Invitation,
    PasswordReset,
    RecoveryCode,
    Role,
    SignInAttempt,
    User,
    UserSession,
)

__all__ = [
    "FHIR_SCOPES",
    "FhirAccessToken",
    "FhirAssertion",
    "FhirClient",
    "FhirMessage",
    "FhirRateWindow",
    "FINAL_STATUSES",
    "OPEN_STATUSES",
    "SETTLED_RANK",
    "STAFF_ROLES",
    "AppointmentMode",
    "AttemptKind",
    "AuditEntry",
    "BusinessHours",
    "Base",
    "Channel",
    "Consent",
    "ConsentKind",
    "ContactMethod",
    "PatientLanguage",
    "Document",
    "DraftDocument",
    "Holiday",
    "CloseReason",
    "InfoRequest",
    "Invitation",
    "ItemKind",
    "JobState",
    "MessageChannel",
    "MessageStatus",
    "OutboxMessage",
    "OutcomeClass",
    "OutreachAttempt",
    "OutreachResult",
    "Partner",
    "PasswordReset",
    "ProcessRating",
    "PatientAnswer",
    "PatientLink",
    "Referral",
    "ReferralDraft",
    "ReferralEvent",
    "RecoveryCode",
    "ReferralItem",
    "ReferralView",
    "RequiredItem",
    "Role",
    "ScorecardEpoch",
    "ScorecardSnapshot",
    "ServiceLine",
    "STAGE_OWNERS",
    "SignInAttempt",
    "SlaClock",
    "SlaStage",
    "SlaTarget",
    "SlotOffer",
    "Status",
    "Urgency",
    "User",
    "UserSession",
]
