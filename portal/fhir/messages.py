"""POST /fhir/$process-message: a referring EHR's messages, through the services the web
form uses (docs/fhir.md, "Messages").

- add-service-request: the Patient, Practitioner (NPI), ServiceRequest, Consents and
  DocumentReferences become the web form's fields, checked by the web form itself
  (portal/referrals/forms.py: the same bounds, validators, NPI check, phone and upload
  checks), then services.submit_referral: the same consents, routing, needs-info, SLA
  clocks, audit and notifications. The referral's source channel is "portal" (the
  office sent it itself; there is no FHIR channel yet).
- revoke-service-request: services.withdraw, through the partner's withdraw action
  (only where the web page offers it: 409 otherwise).
- add-communication: answers the open needs-info request through
  needs_info.answer_information, checked by the web answer form.

The answer is a response message (MessageHeader.response.identifier = the request's
MessageHeader.id, code ok) with the receiver's Task and the ServiceRequest; refusals
are OperationOutcomes (4xx) and store nothing. Each answer is kept (FhirMessage, by
client and MessageHeader.id): a resent message gets the first answer, byte for byte,
and changes nothing, also when two copies race (the unique constraint decides).

A referral message is made idempotent twice over: the submission token is derived
from the client and MessageHeader.id, so even a referral whose answer was never stored
(the process stopped between the two) is found again, not made twice.

A possible duplicate (an open referral from the office for the same patient, as the
web form warns) is refused with 409 naming the earlier ServiceRequest; to send anyway,
tag the MessageHeader with meta.tag {system: MESSAGE_TAGS_SYSTEM, code: submit-anyway}.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import re
import uuid
from collections.abc import Callable
from typing import Any

from flask import g, request
from flask_babel import force_locale
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.exc import StaleDataError
from werkzeug.datastructures import FileStorage, MultiDict

from portal.clock import utcnow
from portal.extensions import db
from portal.fhir import CODE_SYSTEM_BASE, bp
from portal.fhir.bundle import (
    CONSENT_KINDS_SYSTEM,
    EVENTS,
    MESSAGE_EVENTS_SYSTEM,
    Entry,
    Issue,
    Message,
    MessageRefused,
    parse_message,
    read_body,
    refuse,
)
from portal.fhir.clients import fhir_api
from portal.fhir.mapping import NPI_SYSTEM, service_request_resource, task_resource
from portal.fhir.outcomes import FhirError, fhir_response
from portal.models import (
    Channel,
    ContactMethod,
    FhirClient,
    FhirMessage,
    ItemKind,
    PatientLanguage,
    Referral,
    ServiceLine,
    Urgency,
    User,
)
from portal.referrals import forms, services
from portal.referrals.access import find_referral
from portal.referrals.actions import ACTIONS, WithdrawForm, perform
from portal.referrals.documents import sniff_content_type
from portal.referrals.duplicates import PossibleDuplicate
from portal.referrals.needs_info import InfoAnswer, answer_information, open_items
from portal.referrals.routes import submission_from_form
from portal.referrals.workflow import ActionForbidden, EditConflict, TransitionRefused
from portal.text import refusal_for_text

MESSAGE_TAGS_SYSTEM = f"{CODE_SYSTEM_BASE}/message-tags"
# ServiceRequest.priority -> our urgency (urgent, asap and stat all need contact within
# hours: the form's "Urgent").
URGENCY = {
    "routine": Urgency.ROUTINE,
    "urgent": Urgency.URGENT,
    "asap": Urgency.URGENT,
    "stat": Urgency.URGENT,
}
# ContactPoint.system -> preferred contact, for the telecom ranked first.
CONTACT = {"phone": ContactMethod.PHONE, "sms": ContactMethod.SMS, "email": ContactMethod.EMAIL}
CONSENT_KINDS = ("contact", "outcome-sharing")
REFERENCE_PATTERN = r"[A-Za-z0-9-]{1,40}"


@bp.post("/$process-message")
@fhir_api()
def process_message():
    """One message in, one response message (or OperationOutcome) out."""
    try:
        message = parse_message(read_body())
        scope = EVENTS[message.event]
        if scope not in g.fhir_scopes:
            raise FhirError(
                403,
                f"The event {message.event} needs the scope {scope}; ask for it at /auth/token "
                "(an admin grants a client its scopes).",
            )
        client: FhirClient = g.fhir_client
        stored = _stored_answer(client, message.header_id)
        if stored is not None:
            return _replay(stored)
        answer, referral = HANDLERS[message.event](message, client)
        return _store(client, message, answer, referral)
    except MessageRefused as refused:
        db.session.rollback()
        return refused.response()
    except _Replay as replay:  # a racing copy of this message did the change first
        return _replay(replay.stored)


def _stored_answer(client: FhirClient, header_id: str) -> FhirMessage | None:
    return db.session.scalar(
        select(FhirMessage).where(
            FhirMessage.client_id == client.id, FhirMessage.header_id == header_id
        )
    )


def _replay(stored: FhirMessage):
    if stored.referral_id is not None:
        g.fhir_audit_target = db.session.get(Referral, stored.referral_id)
    return fhir_response(stored.response, stored.status_code)


def _store(client: FhirClient, message: Message, answer: dict[str, Any], referral: Referral):
    """Keep the answer with the change it reports (one transaction for a withdrawal or
    an answer; right after the referral's own commit for a new referral). A copy of
    the same message that got here first wins: its answer is the answer."""
    row = FhirMessage(
        client_id=client.id,
        header_id=message.header_id,
        event=message.event,
        status_code=200,
        response=answer,
        referral_id=referral.id,
    )
    try:
        with db.session.begin_nested():
            db.session.add(row)
    except IntegrityError:
        db.session.rollback()
        stored = _stored_answer(client, message.header_id)
        if stored is None:
            raise
        return _replay(stored)
    g.fhir_audit_target = referral
    return fhir_response(answer, 200)


def _refused_or_replayed(message: Message, client: FhirClient, status: int, text: str, path: str):
    """A refusal from the workflow: unless a copy of the same message already did
    the change (a race), whose answer is then the answer."""
    db.session.rollback()
    stored = _stored_answer(client, message.header_id)
    if stored is not None:
        return stored
    raise refuse(status, text, path, "conflict" if status == 409 else None)


# --- The response message ----------------------------------------------------------


def response_message(message: Message, referral: Referral, viewer: User) -> dict[str, Any]:
    base = request.url_root + "fhir/"
    task = task_resource(referral, viewer)
    service_request = service_request_resource(referral, viewer)
    header_id = str(uuid.uuid4())
    header: dict[str, Any] = {
        "resourceType": "MessageHeader",
        "id": header_id,
        "eventCoding": {"system": MESSAGE_EVENTS_SYSTEM, "code": message.event},
        "source": {"endpoint": base + "$process-message"},
        "response": {"identifier": message.header_id, "code": "ok"},
        "focus": [{"reference": f"Task/{task['id']}"}],
    }
    sender = (message.header.get("source") or {}).get("endpoint")
    if _plain_text(sender, 2000):  # echoed and stored: never control characters
        header["destination"] = [{"endpoint": sender}]
    return {
        "resourceType": "Bundle",
        "id": str(uuid.uuid4()),
        "type": "message",
        "timestamp": utcnow().isoformat(timespec="seconds").replace("+00:00", "Z"),
        "entry": [
            {"fullUrl": f"urn:uuid:{header_id}", "resource": header},
            {"fullUrl": f"{base}Task/{task['id']}", "resource": task},
            {
                "fullUrl": f"{base}ServiceRequest/{service_request['id']}",
                "resource": service_request,
            },
        ],
    }


# --- Form fields from resources ----------------------------------------------------


class FormData:
    """The web form's fields filled from resources, each remembering the element it
    came from, so the form's refusals name that element."""

    def __init__(self) -> None:
        self.data = MultiDict()
        self.paths: dict[str, str] = {}

    def set(self, name: str, value: Any, path: str) -> None:
        self.paths[name] = path
        if value is not None:
            self.data.add(name, value)

    def issues(self, form) -> list[Issue]:
        return [
            Issue(str(problem), self.paths.get(name, "Bundle"), "invalid")
            for name, problems in form.errors.items()
            for problem in problems
        ]


def _validated(form_class: Callable, fields: FormData, **kwargs: Any):
    """The web form's own checks on `fields`; its refusals in English (for integration
    engineers, whatever the practice's language: only the checks, not the services)."""
    with force_locale("en"):
        form = form_class(formdata=fields.data, meta={"csrf": False}, **kwargs)
        if not form.validate():
            raise MessageRefused(422, fields.issues(form))
    return form


def _attachment_file(attachment: dict[str, Any], path: str, default_name: str) -> FileStorage:
    """An inline attachment as the upload the web form would get: the form reads it with
    the web's checks (size, kind by content); a contentType that the content belies is
    refused here."""
    data = attachment.get("data")
    if not data:
        raise refuse(
            422,
            "Send each document inline: attachment.data (base64) with its contentType.",
            f"{path}.data",
            "required",
        )
    try:
        content = base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise refuse(400, "attachment.data is not base64.", f"{path}.data") from None
    sniffed = sniff_content_type(content[:16])
    declared = attachment.get("contentType")
    if sniffed is not None and declared and declared.split(";")[0].strip().lower() != sniffed:
        raise refuse(
            422, f"This document is a {sniffed} file, not {declared[:60]}.", f"{path}.contentType"
        )
    return FileStorage(io.BytesIO(content), filename=attachment.get("title") or default_name)


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


# --- add-service-request -----------------------------------------------------------


def add_service_request(message: Message, client: FhirClient) -> tuple[dict[str, Any], Referral]:
    request_entry = _focus_of_type(message, "ServiceRequest")
    sr, sr_path = request_entry.resource, request_entry.path
    issues = []
    for element, allowed in (("status", ("active",)), ("intent", ("order",))):
        if sr.get(element) not in allowed:
            issues.append(
                Issue(
                    f"ServiceRequest.{element} must be {allowed[0]}.",
                    f"{sr_path}.{element}",
                    "code-invalid",
                )
            )
    priority = sr.get("priority", "routine")
    if priority not in URGENCY:
        issues.append(
            Issue(
                f"ServiceRequest.priority must be one of {', '.join(URGENCY)}.",
                f"{sr_path}.priority",
                "code-invalid",
            )
        )
    for consent in message.of_type("Consent"):
        if consent.resource.get("status") != "active":
            issues.append(
                Issue(
                    "Consent.status must be active (a consent the patient gave).",
                    f"{consent.path}.status",
                    "code-invalid",
                )
            )
    if issues:
        raise MessageRefused(422, issues)

    line = _service_line(sr, sr_path)
    patient = message.resolve(sr.get("subject"), f"{sr_path}.subject", "Patient")
    practitioner = _practitioner(message, sr, sr_path)
    fields = FormData()
    fields.set("service_line", str(line.id), f"{sr_path}.code")
    fields.set("urgency", URGENCY[priority].value, f"{sr_path}.priority")
    _practitioner_fields(fields, practitioner)
    _patient_fields(fields, patient)
    reasons = [text for c in sr.get("reasonCode", []) if (text := _text(c.get("text")))]
    fields.set("reason", "; ".join(reasons) or None, f"{sr_path}.reasonCode")
    notes = [text for n in sr.get("note", []) if (text := _text(n.get("text")))]
    fields.set("clinical_context", "\n\n".join(notes) or None, f"{sr_path}.note")
    _consent_fields(fields, message)
    _document_fields(fields, message, sr, sr_path, line)
    token = _submission_token(client, message.header_id)
    fields.set("submission_token", token, "Bundle.entry[0].resource.id")

    form = _validated(
        forms.referral_form_class(line, for_staff=False), fields, service_lines=[line]
    )
    tags = message.header.get("meta", {}).get("tag", [])
    anyway = any(
        tag.get("system") == MESSAGE_TAGS_SYSTEM and tag.get("code") == "submit-anyway"
        for tag in tags
    )
    # The office sent it itself, as through the form (there is no FHIR channel yet).
    submission = submission_from_form(form, client.partner, Channel.PORTAL, submit_anyway=anyway)
    try:
        result = services.submit_referral(submission, client.user)
    except PossibleDuplicate as duplicate:
        raise refuse(
            409,
            f"Your office already has an open referral for this patient "
            f"(ServiceRequest/{duplicate.earlier.reference}). To send this one as well, send it "
            f"again with meta.tag {{system {MESSAGE_TAGS_SYSTEM}, code submit-anyway}} on the "
            "MessageHeader.",
            f"{sr_path}.subject",
            "duplicate",
        ) from None
    except TransitionRefused as refused:
        raise refuse(422, str(refused), f"{sr_path}") from None
    return response_message(message, result.referral, client.user), result.referral


def _focus_of_type(message: Message, kind: str) -> Entry:
    for index, reference in enumerate(message.header["focus"]):
        entry = message.resolve(reference, f"Bundle.entry[0].resource.focus[{index}]")
        if entry.type == kind:
            return entry
    raise refuse(
        422,
        f"The {message.event} event's MessageHeader.focus must name the {kind}.",
        "Bundle.entry[0].resource.focus",
    )


def _service_line(sr: dict[str, Any], path: str) -> ServiceLine:
    codings = [
        c
        for c in ((sr.get("code") or {}).get("coding") or [])[:10]
        # Longer than the columns, or holding control characters (PostgreSQL cannot even
        # compare a NUL): no service line's, and no value for the database.
        if _plain_text(c.get("system"), 200) and _plain_text(c.get("code"), 64)
    ]
    for coding in codings:
        line = db.session.scalar(
            select(ServiceLine)
            .where(
                ServiceLine.active.is_(True),
                ServiceLine.fhir_system == coding["system"],
                ServiceLine.fhir_code == coding["code"],
            )
            .options(selectinload(ServiceLine.required_items))
        )
        if line is not None:
            return line
    raise refuse(
        422,
        "ServiceRequest.code names none of our service lines: use a coding (system and code) "
        "from the list in docs/fhir.md (your implementation contact can add one).",
        f"{path}.code",
        "code-invalid",
    )


def _plain_text(value: Any, longest: int) -> bool:
    """A non-empty string of at most `longest` characters, without control characters."""
    return (
        isinstance(value, str)
        and len(value) > 0
        and refusal_for_text(value, max_length=longest, multiline=False) is None
    )


def _texts(values: Any) -> list[str]:
    """The strings of a FHIR string array (a null element is valid FHIR, and says nothing)."""
    return [value for value in values or [] if isinstance(value, str)]


def _practitioner(message: Message, sr: dict[str, Any], path: str) -> Entry:
    requester = message.resolve(
        sr.get("requester"), f"{path}.requester", "Practitioner", "PractitionerRole"
    )
    if requester.type == "PractitionerRole":
        requester = message.resolve(
            requester.resource.get("practitioner"), f"{requester.path}.practitioner", "Practitioner"
        )
    return requester


def _practitioner_fields(fields: FormData, practitioner: Entry) -> None:
    resource, path = practitioner.resource, practitioner.path
    names = resource.get("name") or [{}]
    name = names[0]
    text = (
        name.get("text")
        or " ".join(
            [*_texts(name.get("prefix")), *_texts(name.get("given")), name.get("family") or ""]
        ).strip()
    )
    fields.set("referring_provider_name", text or None, f"{path}.name[0]")
    identifiers = resource.get("identifier", [])
    for index, identifier in enumerate(identifiers):
        if identifier.get("system") == NPI_SYSTEM:
            fields.set(
                "referring_provider_npi",
                identifier.get("value"),
                f"{path}.identifier[{index}].value",
            )
            return
    raise refuse(
        422,
        "The referring Practitioner needs an NPI: an identifier with system "
        f"{NPI_SYSTEM} (this service takes referrals from US practices; other national "
        "identifiers are not used).",
        f"{path}.identifier",
        "required",
    )


def _patient_fields(fields: FormData, patient: Entry) -> None:
    resource, path = patient.resource, patient.path
    names = resource.get("name") or [{}]
    chosen = next((i for i, n in enumerate(names) if n.get("use") == "official"), 0)
    name = names[chosen]
    given = " ".join(_texts(name.get("given"))) or None
    fields.set("patient_first_name", given, f"{path}.name[{chosen}].given")
    fields.set("patient_last_name", name.get("family"), f"{path}.name[{chosen}].family")
    fields.set("patient_date_of_birth", resource.get("birthDate"), f"{path}.birthDate")
    # Each kind's best-ranked contact point (rank 1 first; unranked after, in order).
    telecom = sorted(
        (
            (point.get("rank") or 10**12, index, point)
            for index, point in enumerate(resource.get("telecom", []))
            if point.get("system") in CONTACT and point.get("value")
        ),
        key=lambda ranked: ranked[:2],
    )
    phone = next(((i, p) for _r, i, p in telecom if p["system"] in ("phone", "sms")), None)
    email = next(((i, p) for _r, i, p in telecom if p["system"] == "email"), None)
    fields.paths["patient_phone"] = fields.paths["patient_email"] = f"{path}.telecom"
    if phone:
        fields.set("patient_phone", phone[1]["value"], f"{path}.telecom[{phone[0]}].value")
    if email:
        fields.set("patient_email", email[1]["value"], f"{path}.telecom[{email[0]}].value")
    preferred = CONTACT[telecom[0][2]["system"]].value if telecom else None
    fields.set("preferred_contact", preferred, f"{path}.telecom")
    fields.set("patient_language", _language(resource).value, f"{path}.communication")


def _language(patient: dict[str, Any]) -> PatientLanguage:
    """Spanish when the patient's (preferred) language is Spanish; otherwise English,
    the other language we write to patients in."""
    languages = patient.get("communication", [])
    languages = sorted(languages, key=lambda c: not c.get("preferred"))
    for communication in languages[:1]:
        codes = [c.get("code") or "" for c in communication.get("language", {}).get("coding", [])]
        if any(code.lower().split("-")[0] == "es" for code in codes):
            return PatientLanguage.SPANISH
    return PatientLanguage.ENGLISH


def _consent_fields(fields: FormData, message: Message) -> None:
    """The two consents, by their category in our consent-kinds CodeSystem; a consent
    is granted when active with no denying provision."""
    found: dict[str, tuple[bool, str]] = {}
    for consent in message.of_type("Consent"):
        for category in consent.resource.get("category", []):
            for coding in category.get("coding", []):
                if (
                    coding.get("system") == CONSENT_KINDS_SYSTEM
                    and coding.get("code") in CONSENT_KINDS
                ):
                    denied = (consent.resource.get("provision") or {}).get("type") == "deny"
                    found[coding["code"]] = (not denied, consent.path)
    where = "Bundle.entry.resource.ofType(Consent)"
    for kind, name in (
        ("contact", "consent_to_contact"),
        ("outcome-sharing", "consent_to_outcome_sharing"),
    ):
        granted, path = found.get(kind, (False, where))
        fields.set(name, "y" if granted else None, f"{path}" if kind in found else where)


def _document_fields(
    fields: FormData, message: Message, sr: dict[str, Any], sr_path: str, line: ServiceLine
) -> None:
    """ServiceRequest.supportingInfo's DocumentReferences: one whose type.text (or
    description) is a required document's label fills that item; the others are
    supporting documents."""
    wanted = {
        item.label.casefold(): item
        for item in line.required_items
        if item.kind is ItemKind.DOCUMENT
    }
    fields.paths["documents"] = f"{sr_path}.supportingInfo"
    for index, reference in enumerate(sr.get("supportingInfo", [])):
        path = f"{sr_path}.supportingInfo[{index}]"
        entry = message.resolve(reference, path)
        if entry.type != "DocumentReference":
            continue
        contents = entry.resource.get("content", [])
        attachment = contents[0].get("attachment", {}) if contents else {}
        storage = _attachment_file(attachment, f"{entry.path}.content[0].attachment", "document")
        label = (
            (entry.resource.get("type") or {}).get("text")
            or entry.resource.get("description")
            or ""
        ).casefold()
        item = wanted.pop(label, None)
        if item is not None:
            fields.set(f"item_{item.id}", storage, f"{entry.path}.content[0].attachment")
        else:
            fields.data.add("documents", storage)


def _submission_token(client: FhirClient, header_id: str) -> str:
    digest = hashlib.sha256(f"{client.client_id}\n{header_id}".encode()).digest()
    return "fhir-" + base64.urlsafe_b64encode(digest).decode().rstrip("=")[:40]


# --- revoke-service-request and add-communication ----------------------------------


def _our_referral(
    message: Message, client: FhirClient, reference: dict[str, Any] | None, path: str
) -> Referral:
    """The referral a Reference to our ServiceRequest names (ServiceRequest/<reference>,
    absolute or relative, or an identifier whose value is the reference): 404 when the
    client's partner has none by that reference (another partner's: the same)."""
    candidates: list[str] = []
    if isinstance(reference, dict):
        target = reference.get("reference")
        if isinstance(target, str) and "ServiceRequest/" in target:
            candidates.append(target.rsplit("ServiceRequest/", 1)[1])
        identifier = reference.get("identifier") or {}
        if isinstance(identifier.get("value"), str):
            candidates.append(identifier["value"])
    for candidate in candidates:
        if re.fullmatch(REFERENCE_PATTERN, candidate):
            referral = find_referral(client.user, candidate)
            if referral is not None:
                return referral
    raise refuse(404, "No ServiceRequest of yours has this id.", path, "not-found")


def revoke_service_request(message: Message, client: FhirClient) -> tuple[dict[str, Any], Referral]:
    entry = _focus_of_type(message, "ServiceRequest")
    sr = entry.resource
    if sr.get("status") != "revoked":
        raise refuse(
            422,
            "To withdraw a referral, send its ServiceRequest with status revoked.",
            f"{entry.path}.status",
            "code-invalid",
        )
    identifiers = sr.get("identifier", [])
    reference = {"reference": f"ServiceRequest/{sr['id']}"} if sr.get("id") else None
    referral = None
    for candidate in [reference, *({"identifier": i} for i in identifiers)]:
        try:
            referral = _our_referral(message, client, candidate, f"{entry.path}.id")
            break
        except MessageRefused:
            continue
    if referral is None:
        raise refuse(
            404,
            "No ServiceRequest of yours has this id or identifier.",
            f"{entry.path}.id",
            "not-found",
        )
    reason = (
        " ".join(n.get("text") for n in sr.get("note", []) if isinstance(n.get("text"), str))
        or None
    )
    fields = FormData()
    fields.set("version", str(referral.version), f"{entry.path}.meta.versionId")
    fields.set("reason", reason, f"{entry.path}.note")
    form = _validated(WithdrawForm, fields)
    try:
        perform(ACTIONS["withdraw"], referral, client.user, form)
        db.session.flush()
    except (ActionForbidden, TransitionRefused) as refused:
        stored = _refused_or_replayed(
            message,
            client,
            409,
            f"This referral cannot be withdrawn now (it is {referral.status.value}): {refused}",
            f"{entry.path}",
        )
        raise _Replay(stored) from None
    except (EditConflict, StaleDataError):
        stored = _refused_or_replayed(
            message,
            client,
            409,
            "The referral changed meanwhile: send the message again.",
            entry.path,
        )
        raise _Replay(stored) from None
    return response_message(message, referral, client.user), referral


def add_communication(message: Message, client: FhirClient) -> tuple[dict[str, Any], Referral]:
    entry = _focus_of_type(message, "Communication")
    communication, path = entry.resource, entry.path
    if communication.get("status") != "completed":
        raise refuse(
            422, "Communication.status must be completed.", f"{path}.status", "code-invalid"
        )
    based_on = communication.get("basedOn") or [None]
    referral = _our_referral(message, client, based_on[0], f"{path}.basedOn[0]")
    items = open_items(referral)
    if not items:
        raise refuse(
            409,
            "Nothing is being asked for on this referral any more.",
            f"{path}.basedOn[0]",
            "conflict",
        )
    fields = FormData()
    fields.set("version", str(referral.version), f"{path}.basedOn[0]")
    by_id = {f"item-{item.id}": item for item in items}
    by_label = {item.label.casefold(): item for item in items}
    notes: list[str] = []
    for index, payload in enumerate(communication.get("payload", [])):
        where = f"{path}.payload[{index}]"
        named = by_id.get(payload.get("id") or "")
        wants_text = named is not None and named.kind is ItemKind.ANSWER
        if named is not None and wants_text != ("contentString" in payload):
            raise refuse(
                422,
                f"{payload['id']} asks for "
                + ("a written answer (contentString)." if wants_text else "a document."),
                where,
            )
        if "contentString" in payload:
            text = payload["contentString"]
            label, _, rest = text.partition(":")
            item = named or (by_label.get(label.strip().casefold()) if rest else None)
            if item is not None and item.kind is ItemKind.ANSWER:
                fields.set(
                    f"item_{item.id}",
                    rest.strip() if named is None else text,
                    f"{where}.contentString",
                )
            else:
                notes.append(text)
                fields.paths["message"] = f"{where}.contentString"
            continue
        attachment, attachment_path, label = (
            payload.get("contentAttachment"),
            f"{where}.contentAttachment",
            None,
        )
        if attachment is None:
            document = message.resolve(
                payload.get("contentReference"), f"{where}.contentReference", "DocumentReference"
            )
            contents = document.resource.get("content", [])
            attachment = contents[0].get("attachment", {}) if contents else {}
            attachment_path = f"{document.path}.content[0].attachment"
            label = (document.resource.get("type") or {}).get("text") or document.resource.get(
                "description"
            )
        label = label or attachment.get("title") or ""
        documents = [item for item in items if item.kind is ItemKind.DOCUMENT]
        item = (
            named
            or by_label.get(label.casefold())
            or (documents[0] if len(documents) == 1 else None)
        )
        if item is None or item.kind is not ItemKind.DOCUMENT:
            raise refuse(
                422,
                "Name the requested document this attachment is (its title, or the payload id "
                "item-<n> from our needs-info Communication).",
                attachment_path,
            )
        fields.set(
            f"item_{item.id}",
            _attachment_file(attachment, attachment_path, "document"),
            attachment_path,
        )
    fields.set("message", "\n".join(notes) or None, fields.paths.get("message", f"{path}.payload"))
    form = _validated(forms.answer_form_class(items), fields, open_items=items)
    try:
        answer_information(
            referral,
            client.user,
            InfoAnswer(form.item_answers(), form.item_uploads, form.message.data or ""),
            expected_version=form.version.data,
        )
        db.session.flush()
    except TransitionRefused as refused:
        raise _Replay(
            _refused_or_replayed(message, client, 422, str(refused), f"{path}.payload")
        ) from None
    except (EditConflict, StaleDataError):
        raise _Replay(
            _refused_or_replayed(
                message,
                client,
                409,
                "The referral changed meanwhile: send the message again.",
                path,
            )
        ) from None
    return response_message(message, referral, client.user), referral


class _Replay(Exception):
    def __init__(self, stored: FhirMessage) -> None:
        self.stored = stored


HANDLERS = {
    "add-service-request": add_service_request,
    "revoke-service-request": revoke_service_request,
    "add-communication": add_communication,
}
