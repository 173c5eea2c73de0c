"""A referral as FHIR R4 resources, as its referring office sees it: written once.

- `STATUS_TABLE`: our statuses to Task.status and our businessStatus codes (the one
  table; docs/fhir.md prints it), published as the CodeSystem BUSINESS_STATUS_SYSTEM.
- `task_resource`, `service_request_resource`, `communication_resources`,
  `appointment_resource`: built with fhir.resources' R4B models (so validated as they
  are built) and returned as JSON-ready dicts.

What goes out is what the partner's web page shows: the referral as the office sent it,
its status, and the partner's timeline (services.timeline and event_headline, so
staff-only events and notes never leave, and follow-up notes only as consented).
Nothing here reads more than the referral, its service line and the viewer's partner,
except `communication_resources` (the timeline and the information requests).
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.codesystem import CodeSystem
from fhir.resources.R4B.communication import Communication
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task
from flask import current_app
from sqlalchemy import select

from portal.config import Config
from portal.extensions import db
from portal.fhir import CODE_SYSTEM_BASE
from portal.models import (
    ContactMethod,
    InfoRequest,
    ItemKind,
    Referral,
    ReferralEvent,
    ReferralItem,
    Status,
    Urgency,
    User,
)

NPI_SYSTEM = "http://hl7.org/fhir/sid/us-npi"
BUSINESS_STATUS_ID = "referral-business-status"
BUSINESS_STATUS_SYSTEM = f"{CODE_SYSTEM_BASE}/{BUSINESS_STATUS_ID}"
# The referral's reference (R-7K3M-9QXD) as the identifier of its Task and ServiceRequest.
REFERENCE_SYSTEM = f"{Config.PORTAL_BASE_URL.rstrip('/')}/fhir/sid/referral-reference"
COMMUNICATION_CATEGORY_ID = "referral-communication-category"
COMMUNICATION_CATEGORY_SYSTEM = f"{CODE_SYSTEM_BASE}/{COMMUNICATION_CATEGORY_ID}"

# Our status -> (Task.status, businessStatus code): the one table (every Status is in
# it: tested). needs-info's question goes out as a Communication (category needs-info);
# scheduled's visit as the Appointment in Task.output; declined's and redirected's
# reason in Task.statusReason (redirected's suggested service in Task.output too).
STATUS_TABLE: dict[Status, tuple[str, str]] = {
    Status.SUBMITTED: ("requested", "submitted"),
    Status.IN_REVIEW: ("received", "in-review"),
    Status.NEEDS_INFO: ("on-hold", "needs-info"),
    Status.ACCEPTED: ("accepted", "accepted"),
    Status.SCHEDULED: ("in-progress", "scheduled"),
    Status.COMPLETED: ("completed", "completed"),
    Status.NO_SHOW: ("failed", "no-show"),
    Status.UNREACHABLE: ("failed", "unreachable"),
    Status.DECLINED: ("rejected", "declined"),
    Status.REDIRECTED: ("rejected", "redirected"),
    Status.WITHDRAWN: ("cancelled", "withdrawn"),
}
# Each businessStatus code's definition, as published in the CodeSystem.
BUSINESS_STATUS_DEFINITIONS = {
    Status.SUBMITTED: "Received by the portal; intake has not picked it up yet.",
    Status.IN_REVIEW: "Intake has picked the referral up and is reviewing it.",
    Status.NEEDS_INFO: "On hold: we asked the referring office for more information "
    "(the question is a Communication with category needs-info).",
    Status.ACCEPTED: "Accepted by a clinician; the patient is being contacted to book.",
    Status.SCHEDULED: "The first visit is booked (the Appointment in Task.output).",
    Status.COMPLETED: "The first visit took place: the patient has started care.",
    Status.NO_SHOW: "The patient did not attend the first visit; intake will try again.",
    Status.UNREACHABLE: "Closed: the patient could not be reached.",
    Status.DECLINED: "Declined as not eligible (the reason in Task.statusReason).",
    Status.REDIRECTED: "Redirected to another service (Task.statusReason names it).",
    Status.WITHDRAWN: "Withdrawn by the referring office.",
}
# The table read backwards, for searches by Task.status and by businessStatus.
STATUSES_BY_TASK_STATUS = {
    task_status: frozenset(s for s, (each, _) in STATUS_TABLE.items() if each == task_status)
    for task_status, _ in STATUS_TABLE.values()
}
STATUS_BY_BUSINESS_CODE = {code: status for status, (_, code) in STATUS_TABLE.items()}

PRIORITY_BY_URGENCY = {Urgency.ROUTINE: "routine", Urgency.URGENT: "urgent"}

# Communication.category codes: a needs-info question (answer it with the
# add-communication message), an update on the partner's timeline.
NEEDS_INFO = "needs-info"
TIMELINE_UPDATE = "update"
COMMUNICATION_CATEGORIES = {
    NEEDS_INFO: (
        "Information needed",
        "A request for more information on a referral; its payloads name the items "
        "asked for (payload.id item-<n>). Answer with an add-communication message.",
    ),
    TIMELINE_UPDATE: (
        "Referral update",
        "An event on the referral's timeline as the referring office sees it.",
    ),
}


def instant(moment: datetime, *, exact: bool = False) -> str:
    """A stored (aware UTC) time as a FHIR instant, to the second, or `exact`ly (to the
    microsecond, as stored: what a _lastUpdated poll compares with)."""
    if moment.tzinfo is None:  # not from the database: taken as UTC
        moment = moment.replace(tzinfo=UTC)
    timespec = "microseconds" if exact else "seconds"
    return moment.astimezone(UTC).isoformat(timespec=timespec).replace("+00:00", "Z")


def checked(model: type, resource: dict[str, Any]) -> dict[str, Any]:
    """`resource` (built JSON-ready) once its R4B model accepts it: a resource we cannot
    build right fails here, never reaching a client. The dict itself goes out: the
    model's own dump costs twice its validation and writes the same JSON."""
    model.model_validate(resource)
    return resource


def version_id(referral: Referral) -> str:
    return str(referral.version)


def _meta(referral: Referral) -> dict[str, str]:
    """Every resource of a referral moves with it: its version, its last partner-visible
    update (what Task?_lastUpdated searches), exactly: a client polling with
    _lastUpdated=gt<the newest it has seen> misses nothing updated within that second."""
    return {
        "versionId": version_id(referral),
        "lastUpdated": instant(referral.updated_at, exact=True),
    }


def _patient(referral: Referral) -> dict[str, Any]:
    """The patient as the referring office sent them (contained: we publish no Patient),
    the preferred contact ranked first."""
    preferred = {
        ContactMethod.PHONE: "phone",
        ContactMethod.SMS: "sms",
        ContactMethod.EMAIL: "email",
    }[referral.preferred_contact]
    telecom = []
    if referral.patient_phone:
        telecom.append({"system": "phone", "value": referral.patient_phone})
        if preferred == "sms":
            telecom.append({"system": "sms", "value": referral.patient_phone})
    if referral.patient_email:
        telecom.append({"system": "email", "value": referral.patient_email})
    for point in telecom:
        point["rank"] = 1 if point["system"] == preferred else 2
    patient: dict[str, Any] = {
        "resourceType": "Patient",
        "id": "patient",
        "name": [{"family": referral.patient_last_name, "given": [referral.patient_first_name]}],
        "birthDate": referral.patient_date_of_birth.isoformat(),
        "communication": [
            {
                "language": {
                    "coding": [
                        {"system": "urn:ietf:bcp:47", "code": referral.patient_language.value}
                    ]
                },
                "preferred": True,
            }
        ],
    }
    if telecom:
        patient["telecom"] = telecom
    return patient


def _practice() -> dict[str, str]:
    return {"display": current_app.config["PRACTICE_NAME"]}


def _partner(viewer: User, referral: Referral) -> dict[str, str]:
    """The referring office, named as a display: the viewer's own partner when it is the
    referral's (no load), else the referral's."""
    partner = viewer.partner if viewer.partner_id == referral.partner_id else referral.partner
    return {"display": partner.name}


def _identifier(referral: Referral) -> list[dict[str, str]]:
    return [{"system": REFERENCE_SYSTEM, "value": referral.reference}]


# Our status -> Appointment.status, for referrals with a visit booked. A referral closed
# (withdrawn, unreachable) after its visit's time had passed without completing it:
# the visit was missed (noshow); closed before it: cancelled.
APPOINTMENT_STATUS = {
    Status.SCHEDULED: "booked",
    Status.COMPLETED: "fulfilled",
    Status.NO_SHOW: "noshow",
}
CLOSED_WITH_VISIT = frozenset({Status.UNREACHABLE, Status.WITHDRAWN})


def appointment_status(referral: Referral) -> str | None:
    """The visit's Appointment.status, or None: no visit is (or was) booked."""
    if referral.appointment_at is None:
        return None
    if referral.status in APPOINTMENT_STATUS:
        return APPOINTMENT_STATUS[referral.status]
    if referral.status in CLOSED_WITH_VISIT:
        closed = referral.outcome_at or referral.updated_at
        return "noshow" if referral.appointment_at < closed else "cancelled"
    return None


def task_resource(referral: Referral, viewer: User) -> dict[str, Any]:
    """The receiver's Task for `referral`, as `viewer` (the partner's user) sees it."""
    status, code = STATUS_TABLE[referral.status]
    service_request = f"ServiceRequest/{referral.reference}"
    task: dict[str, Any] = {
        "resourceType": "Task",
        "id": referral.reference,
        "meta": _meta(referral),
        "contained": [_patient(referral)],
        "identifier": _identifier(referral),
        "basedOn": [{"reference": service_request}],
        "status": status,
        "businessStatus": {
            "coding": [
                {"system": BUSINESS_STATUS_SYSTEM, "code": code, "display": referral.status.label}
            ],
            "text": referral.status.label,
        },
        "intent": "order",
        "priority": PRIORITY_BY_URGENCY[referral.urgency],
        "focus": {"reference": service_request},
        "for": {"reference": "#patient"},
        "authoredOn": instant(referral.submitted_at),
        "lastModified": instant(referral.updated_at, exact=True),
        "requester": _partner(viewer, referral),
        "owner": _practice(),
    }
    outputs = []
    if referral.status is Status.DECLINED:
        task["statusReason"] = {"text": referral.decline_reason or "Not eligible"}
    elif referral.status is Status.REDIRECTED:
        task["statusReason"] = {
            "text": f"Redirected to another service: {referral.redirect_destination}"
            if referral.redirect_destination
            else "Redirected to another service"
        }
        if referral.redirect_destination:
            outputs.append(
                {
                    "type": {"text": "Suggested service"},
                    "valueString": referral.redirect_destination,
                }
            )
    if appointment_status(referral) is not None:
        outputs.append(
            {
                "type": {"text": "Appointment"},
                "valueReference": {"reference": f"Appointment/{referral.reference}"},
            }
        )
    if outputs:
        task["output"] = outputs
    return checked(Task, task)


def service_request_status(referral: Referral) -> str:
    if referral.status is Status.COMPLETED:
        return "completed"
    return "revoked" if referral.status.is_final else "active"


def service_request_resource(referral: Referral, viewer: User) -> dict[str, Any]:
    """The ServiceRequest as the referring office sent it, with our view of its status."""
    line = referral.service_line
    code: dict[str, Any] = {"text": line.name}
    if line.fhir_system and line.fhir_code:
        code["coding"] = [
            {"system": line.fhir_system, "code": line.fhir_code, "display": line.name}
        ]
    practitioner = {
        "resourceType": "Practitioner",
        "id": "requester",
        "identifier": [{"system": NPI_SYSTEM, "value": referral.referring_provider_npi}],
        "name": [{"text": referral.referring_provider_name}],
    }
    resource: dict[str, Any] = {
        "resourceType": "ServiceRequest",
        "id": referral.reference,
        "meta": _meta(referral),
        "contained": [_patient(referral), practitioner],
        "identifier": _identifier(referral),
        "status": service_request_status(referral),
        "intent": "order",
        "priority": PRIORITY_BY_URGENCY[referral.urgency],
        "code": code,
        "subject": {"reference": "#patient"},
        "authoredOn": instant(referral.submitted_at),
        "requester": {"reference": "#requester", "display": referral.referring_provider_name},
        "performer": [_practice()],
        "reasonCode": [{"text": referral.reason}],
    }
    if referral.clinical_context:
        resource["note"] = [{"text": referral.clinical_context}]
    return checked(ServiceRequest, resource)


def appointment_resource(referral: Referral, viewer: User) -> dict[str, Any] | None:
    """The first visit, once one is booked (None before, or after it was cancelled to be
    booked again)."""
    status = appointment_status(referral)
    if status is None:
        return None
    start = referral.appointment_at
    minutes = int(current_app.config["VISIT_MINUTES"])
    mode = referral.appointment_mode.value if referral.appointment_mode else None
    resource: dict[str, Any] = {
        "resourceType": "Appointment",
        "id": referral.reference,
        "meta": _meta(referral),
        "contained": [_patient(referral)],
        "status": status,
        "start": instant(start),
        "end": instant(start + timedelta(minutes=minutes)),
        "minutesDuration": minutes,
        "basedOn": [{"reference": f"ServiceRequest/{referral.reference}"}],
        "participant": [
            {"actor": {"reference": "#patient"}, "required": "required", "status": "accepted"}
        ],
    }
    if mode:
        resource["appointmentType"] = {"text": f"{mode} visit"}
        resource["description"] = f"First visit ({mode})"
    return checked(Appointment, resource)


# --- Communications: the partner's timeline and our questions ------------------------


def event_communication_id(referral: Referral, event_id: int) -> str:
    return f"{referral.reference}-e{event_id}"


def question_communication_id(referral: Referral, request_id: int) -> str:
    return f"{referral.reference}-q{request_id}"


# What each requested item wants, for the question's notes.
ITEM_KINDS = {
    ItemKind.DOCUMENT: "a document (send it as a contentAttachment or a DocumentReference "
    "with this payload id)",
    ItemKind.ANSWER: "a written answer (send a contentString with this payload id)",
}


def _category(code: str) -> list[dict[str, Any]]:
    display = COMMUNICATION_CATEGORIES[code][0]
    return [
        {"coding": [{"system": COMMUNICATION_CATEGORY_SYSTEM, "code": code, "display": display}]}
    ]


def communication_resources(
    referral: Referral,
    viewer: User,
    events: list[ReferralEvent],
    headline: Callable[[ReferralEvent], str],
) -> list[dict[str, Any]]:
    """The referral's Communications as `viewer` sees them: one per information request
    (category needs-info; payload ids item-<n> name the items asked for) and one per
    event of `events` (services.timeline(referral, viewer): exactly the partner's
    timeline, each with its headline as the partner reads it). Oldest first.

    Three statements whatever the size: `events` are read by the caller; the requests
    and their items here."""
    service_request = {"reference": f"ServiceRequest/{referral.reference}"}
    task = {"reference": f"Task/{referral.reference}"}
    requests = list(
        db.session.scalars(
            select(InfoRequest)
            .where(InfoRequest.referral_id == referral.id)
            .order_by(InfoRequest.requested_at, InfoRequest.id)
        )
    )
    items_by_request: dict[int, list[ReferralItem]] = {}
    if requests:
        for item in db.session.scalars(
            select(ReferralItem)
            .where(
                ReferralItem.referral_id == referral.id,
                ReferralItem.info_request_id.is_not(None),
            )
            .order_by(ReferralItem.id)
        ):
            items_by_request.setdefault(item.info_request_id, []).append(item)
    built: list[tuple[datetime, int, int, dict[str, Any]]] = []
    practice, partner = _practice(), _partner(viewer, referral)
    for info in requests:
        payload: list[dict[str, Any]] = []
        notes: list[dict[str, str]] = []
        if info.message:
            payload.append({"contentString": info.message})
        for item in items_by_request.get(info.id, []):
            # The item's label as asked; what to send (and whether it came) as a note.
            payload.append({"id": f"item-{item.id}", "contentString": item.label})
            wanted = ITEM_KINDS[item.kind]
            received = "received" if item.is_provided else "not received yet"
            notes.append({"text": f"item-{item.id}: {wanted}; {received}."})
        if not payload:
            payload.append({"contentString": "More information needed"})
        resource = {
            "resourceType": "Communication",
            "id": question_communication_id(referral, info.id),
            "meta": _meta(referral),
            "basedOn": [service_request],
            "about": [task],
            "status": "in-progress" if info.closed_at is None else "completed",
            "category": _category(NEEDS_INFO),
            "sent": instant(info.requested_at),
            "sender": practice,
            "recipient": [partner],
            "payload": payload,
        }
        if notes:
            resource["note"] = notes
        if info.close_reason is not None:
            resource["statusReason"] = {"text": info.close_reason.label}
        built.append((info.requested_at, 0, info.id, resource))
    for event in events:
        by_partner = event.actor is not None and event.actor.is_partner_user
        resource = {
            "resourceType": "Communication",
            "id": event_communication_id(referral, event.id),
            "meta": _meta(referral),
            "basedOn": [service_request],
            "about": [task],
            "status": "completed",
            "category": _category(TIMELINE_UPDATE),
            "sent": instant(event.at),
            "sender": partner if by_partner else practice,
            "recipient": [practice if by_partner else partner],
            "payload": [{"contentString": headline(event)}],
        }
        built.append((event.at, 1, event.id, resource))
    built.sort(key=lambda row: row[:3])
    return [checked(Communication, row[3]) for row in built]


# --- Our CodeSystems ----------------------------------------------------------------


def _code_system(
    identifier: str, url: str, title: str, description: str, concepts: list[dict[str, str]]
) -> dict[str, Any]:
    return checked(
        CodeSystem,
        {
            "resourceType": "CodeSystem",
            "id": identifier,
            "url": url,
            "name": "".join(part.title() for part in identifier.split("-")),
            "title": title,
            "status": "active",
            "experimental": False,
            "publisher": current_app.config["PRACTICE_NAME"],
            "description": description,
            "caseSensitive": True,
            "content": "complete",
            "count": len(concepts),
            "concept": concepts,
        },
    )


def business_status_code_system() -> dict[str, Any]:
    concepts = []
    for status, (task_status, code) in STATUS_TABLE.items():
        concepts.append(
            {
                "code": code,
                "display": status.label,
                "definition": f"{BUSINESS_STATUS_DEFINITIONS[status]} (Task.status {task_status})",
            }
        )
    return _code_system(
        BUSINESS_STATUS_ID,
        BUSINESS_STATUS_SYSTEM,
        "Referral business status",
        "Where a referral stands in the practice's workflow: Task.businessStatus of the "
        "receiver's Task.",
        concepts,
    )


def communication_category_code_system() -> dict[str, Any]:
    return _code_system(
        COMMUNICATION_CATEGORY_ID,
        COMMUNICATION_CATEGORY_SYSTEM,
        "Referral communication category",
        "What a Communication about a referral is: a question to the referring office, "
        "or an update from its timeline.",
        [
            {"code": code, "display": display, "definition": definition}
            for code, (display, definition) in COMMUNICATION_CATEGORIES.items()
        ],
    )


def _message_code_systems() -> dict[str, Callable[[], dict[str, Any]]]:
    """The CodeSystems of messages (portal/fhir/bundle.py and messages.py name them)."""
    from portal.fhir.bundle import CONSENT_KINDS_SYSTEM, EVENTS, MESSAGE_EVENTS_SYSTEM
    from portal.fhir.messages import CONSENT_KINDS, MESSAGE_TAGS_SYSTEM

    events = {
        "add-service-request": "A new referral: a ServiceRequest with its Patient, "
        "Practitioner, consents and documents.",
        "revoke-service-request": "The referring office withdraws its referral.",
        "add-communication": "The referring office answers a needs-info request.",
    }
    consents = {
        "contact": "The patient consents to be contacted by the practice.",
        "outcome-sharing": "The patient consents to the practice sharing outcomes and "
        "follow-up notes with the referring office.",
    }
    tags = {
        "submit-anyway": "Submit although the office has an open referral for the same "
        "patient (a possible duplicate).",
    }

    def system(identifier: str, url: str, title: str, description: str, codes: dict) -> Callable:
        return lambda: _code_system(
            identifier,
            url,
            title,
            description,
            [{"code": code, "display": code, "definition": codes[code]} for code in codes],
        )

    return {
        url.rsplit("/", 1)[1]: system(url.rsplit("/", 1)[1], url, title, description, codes)
        for url, title, description, codes in (
            (
                MESSAGE_EVENTS_SYSTEM,
                "Referral message events",
                "MessageHeader.eventCoding of the messages POST /fhir/$process-message takes.",
                {code: events.get(code, code) for code in EVENTS},
            ),
            (
                CONSENT_KINDS_SYSTEM,
                "Referral consent kinds",
                "Consent.category of the two consents a referral message carries.",
                {code: consents.get(code, code) for code in CONSENT_KINDS},
            ),
            (
                MESSAGE_TAGS_SYSTEM,
                "Referral message tags",
                "MessageHeader.meta.tag codes a referral message may carry.",
                tags,
            ),
        )
    }


def code_systems() -> dict[str, Callable[[], dict[str, Any]]]:
    """Every CodeSystem we publish, by id."""
    return {
        BUSINESS_STATUS_ID: business_status_code_system,
        COMMUNICATION_CATEGORY_ID: communication_category_code_system,
        **_message_code_systems(),
    }
