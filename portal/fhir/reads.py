"""The FHIR reads: GET /fhir/metadata, Task (read and search), ServiceRequest,
Communication (search by based-on), Appointment, and our CodeSystems.

Tenancy: every referral is looked up through visible_referrals(client user), so a
client sees only its partner's; another partner's id answers 404 with exactly the body
of a missing one. Reads carry ETag W/"<versionId>" and Last-Modified and answer 304 to
a matching If-None-Match. Each read names its referral in the audit log
(g.fhir_audit_target; a search names each referral it returned).

Search parameters are read strictly: one we do not support, a repeated one, a value we
cannot read (a bad instant, a huge number, a control character) answers 400 with an
OperationOutcome naming the parameter, before any query runs. Task search pages by a
keyset on (meta.lastUpdated, id): a cursor in the next link, so paging through a
growing result costs the same on every page and never skips a Task.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlencode

from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from flask import current_app, g, request
from sqlalchemy import and_, func, insert, or_
from sqlalchemy.orm import joinedload
from werkzeug.http import http_date, parse_etags

from portal.converters import BIGGEST_ID
from portal.extensions import db
from portal.fhir import FHIR_JSON, FHIR_VERSION, bp
from portal.fhir.clients import fhir_api
from portal.fhir.mapping import (
    BUSINESS_STATUS_SYSTEM,
    STATUS_BY_BUSINESS_CODE,
    STATUSES_BY_TASK_STATUS,
    appointment_resource,
    checked,
    code_systems,
    communication_resources,
    service_request_resource,
    task_resource,
    version_id,
)
from portal.fhir.outcomes import FhirError, fhir_response
from portal.models import AuditEntry, Referral, Status
from portal.referrals import services
from portal.referrals.access import visible_referrals
from portal.referrals.references import REFERENCE_REGEX

REFERENCE = re.compile(REFERENCE_REGEX)
# FHIR's Task.status codes (https://hl7.org/fhir/R4/valueset-task-status.html): a search
# may name any; those no referral of ours is ever in simply find nothing.
TASK_STATUS_SYSTEM = "http://hl7.org/fhir/task-status"
TASK_STATUSES = frozenset(
    [
        "draft",
        "requested",
        "received",
        "accepted",
        "rejected",
        "ready",
        "cancelled",
        "in-progress",
        "on-hold",
        "failed",
        "completed",
        "entered-in-error",
    ]
)
DEFAULT_COUNT, MAX_COUNT = 50, 100
# A search value longer than this is no value of ours (a based-on list of 50 references).
MAX_VALUE_LENGTH = 1000
MAX_LIST = 50
INSTANT = re.compile(
    r"(?P<prefix>gt|ge|lt|le|eq|>=|<=|>|<)?"
    r"(?P<moment>\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?P<fraction>\.\d{1,9})?"
    r"(?:Z|[+-]\d{2}:\d{2}))"
)
# The prefixes of FHIR DSTU1, which some clients (the SMART Python client's $gt...) still
# send: read as their FHIR R4 names.
LEGACY_PREFIXES = {">": "gt", ">=": "ge", "<": "lt", "<=": "le"}
EARLIEST_YEAR, LATEST_YEAR = 1900, 2199
CURSOR = re.compile(r"(\d{1,17})-(\d{1,19})")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
SEARCH_PARAMETERS = {
    "Task": ("_lastUpdated", "status", "business-status", "based-on", "_include", "_count"),
    "Communication": ("based-on",),
}
# The paging cursor of a next link: ours, not a search parameter a client composes.
CURSOR_PARAMETER = "_cursor"


# --- Refusals and lookups -----------------------------------------------------------


def not_found(resource_type: str) -> FhirError:
    """The one answer for a missing id and for another partner's: the same body."""
    return FhirError(
        404,
        f"No {resource_type} with this id is available to this client: check the id "
        "(a referral reference such as R-7K3M-9QXD).",
    )


def bad_parameter(name: str, message: str) -> FhirError:
    return FhirError(400, message, expression=_printable(name), code="invalid")


def _printable(text: str, limit: int = 40) -> str:
    """A client's text safe to repeat in an answer: printable ASCII, bounded."""
    cleaned = "".join(c if " " <= c <= "~" else "?" for c in text[:limit])
    return cleaned + ("…" if len(text) > limit else "")


def _referral(resource_type: str, resource_id: str, *, service_line: bool = False) -> Referral:
    """The client's referral `resource_id`, named as the audit's target; 404 for a
    malformed id, a missing one and another partner's alike."""
    if not REFERENCE.fullmatch(resource_id):
        raise not_found(resource_type)
    statement = visible_referrals(g.fhir_client.user).where(Referral.reference == resource_id)
    if service_line:
        statement = statement.options(joinedload(Referral.service_line))
    referral = db.session.scalar(statement)
    if referral is None:
        raise not_found(resource_type)
    g.fhir_audit_target = referral
    return referral


def _conditional(referral: Referral, build) -> Any:  # noqa: ANN001 - a callable
    """The resource `build()` makes, with ETag and Last-Modified; 304 when the client's
    If-None-Match names this version (weak comparison, as RFC 9110 asks for GETs)."""
    etag = f'W/"{version_id(referral)}"'
    headers = {"ETag": etag, "Last-Modified": http_date(referral.updated_at)}
    if request.headers.get("If-None-Match"):
        wanted = parse_etags(request.headers["If-None-Match"])
        if wanted.star_tag or wanted.contains_weak(version_id(referral)):
            response = current_app.response_class(status=304)
            response.headers.update(headers)
            return response
    return fhir_response(build(), headers=headers)


def _base() -> str:
    """The FHIR base URL (fullUrls, links, the CapabilityStatement), from PORTAL_BASE_URL
    like the token endpoint's, never from the Host header a caller chooses."""
    return current_app.config["PORTAL_BASE_URL"].rstrip("/") + "/fhir/"


def _single(name: str) -> str | None:
    values = request.args.getlist(name)
    if len(values) > 1:
        raise bad_parameter(name, f"Send the search parameter {name} once.")
    return _checked_value(name, values[0]) if values else None


def _checked_value(name: str, value: str) -> str:
    if len(value) > MAX_VALUE_LENGTH:
        raise bad_parameter(name, f"{name} is longer than {MAX_VALUE_LENGTH} characters.")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise bad_parameter(name, f"{name} holds a control character.")
    if not value.strip():
        raise bad_parameter(name, f"{name} is empty: leave it out or give it a value.")
    return value.strip()


def _only_parameters(resource_type: str) -> None:
    allowed = set(SEARCH_PARAMETERS[resource_type])
    if resource_type == "Task":
        allowed.add(CURSOR_PARAMETER)
    for name in request.args:
        if name not in allowed:
            raise bad_parameter(
                name,
                f"{resource_type} search does not support the parameter "
                f"{_printable(name)!r}: it takes {', '.join(SEARCH_PARAMETERS[resource_type])}.",
            )


def _list(name: str, value: str) -> list[str]:
    items = [item.strip() for item in value.split(",")]
    if len(items) > MAX_LIST or not all(items):
        raise bad_parameter(name, f"{name} takes 1 to {MAX_LIST} comma-separated values.")
    return items


def _token_codes(name: str, value: str, system: str, codes) -> list[str]:  # noqa: ANN001
    """A token list: each `code` or `system|code` (or `|code`), from `codes`."""
    found = []
    for token in _list(name, value):
        token_system, bar, code = token.rpartition("|")
        if bar and token_system not in ("", system):
            raise bad_parameter(name, f"{name} takes codes of {system}.")
        if code not in codes:
            raise bad_parameter(
                name, f"{name}: {_printable(code)!r} is not one of {', '.join(sorted(codes))}."
            )
        found.append(code)
    return found


def _references(name: str, value: str) -> list[str]:
    """based-on: ServiceRequest/<id>, its absolute URL, or the bare id."""
    found = []
    for item in _list(name, value):
        reference = item.rsplit("/fhir/", 1)[-1] if "://" in item else item
        kind, _, identifier = reference.rpartition("/")
        if kind not in ("", "ServiceRequest") or not REFERENCE.fullmatch(identifier):
            raise bad_parameter(
                name, f"{name} takes ServiceRequest/<id>, the id being a referral reference."
            )
        found.append(identifier)
    return found


def _instant(name: str, value: str) -> tuple[str, datetime, timedelta]:
    """A date search value with its prefix: (prefix, moment, precision)."""
    match = INSTANT.fullmatch(value)
    moment = None
    if match:
        try:
            moment = datetime.fromisoformat(match["moment"].replace("Z", "+00:00"))
            if not EARLIEST_YEAR <= moment.year <= LATEST_YEAR:
                moment = None
            else:
                moment = moment.astimezone(UTC)
        except (ValueError, OverflowError):
            moment = None
    if moment is None:
        raise bad_parameter(
            name,
            f"{name} takes a FHIR instant with an optional prefix gt, ge, lt, le or eq, "
            "e.g. gt2026-11-30T14:00:00Z (seconds and a time zone required).",
        )
    precision = timedelta(microseconds=1) if match["fraction"] else timedelta(seconds=1)
    return LEGACY_PREFIXES.get(match["prefix"], match["prefix"] or "eq"), moment, precision


def _last_updated_conditions(name: str) -> list:
    values = request.args.getlist(name)
    if len(values) > 2:
        raise bad_parameter(name, f"Send {name} at most twice (a lower and an upper bound).")
    conditions = []
    column = Referral.updated_at
    for value in values:
        prefix, moment, precision = _instant(name, _checked_value(name, value))
        conditions.append(
            {
                "gt": column >= moment + precision,
                "ge": column >= moment,
                "lt": column < moment,
                "le": column < moment + precision,
                "eq": and_(column >= moment, column < moment + precision),
            }[prefix]
        )
    return conditions


def _count() -> int:
    raw = _single("_count")
    if raw is None:
        return DEFAULT_COUNT
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 4) or int(raw) > MAX_COUNT:
        raise bad_parameter("_count", f"_count must be a whole number from 0 to {MAX_COUNT}.")
    return int(raw)


def _cursor() -> tuple[datetime, int] | None:
    raw = _single(CURSOR_PARAMETER)
    if raw is None:
        return None
    match = CURSOR.fullmatch(raw)
    if match is None or int(match[2]) > BIGGEST_ID or int(match[1]) > 7_300_000_000_000_000:
        raise bad_parameter(
            CURSOR_PARAMETER, "The paging cursor is not one of ours: follow the next link as given."
        )
    return EPOCH + timedelta(microseconds=int(match[1])), int(match[2])


def _cursor_of(referral: Referral) -> str:
    at = (referral.updated_at - EPOCH) // timedelta(microseconds=1)
    return f"{at}-{referral.id}"


def _search_bundle(
    resource_type: str,
    entries: list[dict[str, Any]],
    total: int,
    next_args: list[tuple[str, str]] | None,
) -> dict[str, Any]:
    base = _base()
    links = [{"relation": "self", "url": request.url}]
    if next_args is not None:
        links.append({"relation": "next", "url": f"{base}{resource_type}?{urlencode(next_args)}"})
    return {
        "resourceType": "Bundle",
        "type": "searchset",
        "total": total,
        "link": links,
        "entry": entries,
    }


def _entry(resource: dict[str, Any], mode: str) -> dict[str, Any]:
    return {
        "fullUrl": f"{_base()}{resource['resourceType']}/{resource['id']}",
        "resource": resource,
        "search": {"mode": mode},
    }


def _audit_disclosed(referrals: list[Referral]) -> None:
    """A search names each referral it returned in the audit log: one statement."""
    if not referrals:
        return
    client = g.fhir_client
    address = request.remote_addr
    action = f"fhir.{request.endpoint.rsplit('.', 1)[-1]}"
    db.session.execute(
        insert(AuditEntry),
        [
            {
                "actor_id": client.user_id,
                "action": action,
                "target_type": "referral",
                "target_id": referral.reference,
                "address": address,
                "detail": {"client": client.client_id, "partner_id": client.partner_id},
            }
            for referral in referrals
        ],
    )


# --- The reads ----------------------------------------------------------------------


@bp.get("/Task/<resource_id>")
@fhir_api("system/Task.rs")
def read_task(resource_id: str):
    referral = _referral("Task", resource_id)
    user = g.fhir_client.user
    return _conditional(referral, lambda: task_resource(referral, user))


@bp.get("/ServiceRequest/<resource_id>")
@fhir_api("system/ServiceRequest.rs")
def read_service_request(resource_id: str):
    referral = _referral("ServiceRequest", resource_id, service_line=True)
    user = g.fhir_client.user
    return _conditional(referral, lambda: service_request_resource(referral, user))


@bp.get("/Appointment/<resource_id>")
@fhir_api("system/Appointment.rs")
def read_appointment(resource_id: str):
    referral = _referral("Appointment", resource_id)
    appointment = appointment_resource(referral, g.fhir_client.user)
    if appointment is None:  # no visit booked (yet): the same answer as a missing id
        raise not_found("Appointment")
    return _conditional(referral, lambda: appointment)


@bp.get("/Task")
@fhir_api("system/Task.rs")
def search_tasks():
    """Task?_lastUpdated=&status=&business-status=&based-on=&_include=Task:focus&_count="""
    _only_parameters("Task")
    user = g.fhir_client.user
    conditions = _last_updated_conditions("_lastUpdated")
    statuses: set[Status] | None = None
    if (value := _single("status")) is not None:
        codes = _token_codes("status", value, TASK_STATUS_SYSTEM, TASK_STATUSES)
        statuses = set().union(*(STATUSES_BY_TASK_STATUS.get(code, ()) for code in codes))
    if (value := _single("business-status")) is not None:
        codes = _token_codes(
            "business-status", value, BUSINESS_STATUS_SYSTEM, STATUS_BY_BUSINESS_CODE
        )
        named = {STATUS_BY_BUSINESS_CODE[code] for code in codes}
        statuses = named if statuses is None else statuses & named
    if statuses is not None:
        conditions.append(Referral.status.in_(sorted(statuses)))
    if (value := _single("based-on")) is not None:
        conditions.append(Referral.reference.in_(_references("based-on", value)))
    include = _single("_include")
    if include is not None and include not in ("Task:focus", "Task:focus:ServiceRequest"):
        raise bad_parameter("_include", "Task search can _include Task:focus only.")
    if include and "system/ServiceRequest.rs" not in g.fhir_scopes:
        raise FhirError(
            403,
            "_include=Task:focus returns ServiceRequests: it needs the scope "
            "system/ServiceRequest.rs.",
            expression="_include",
        )
    count = _count()
    cursor = _cursor()

    matching = visible_referrals(user).where(*conditions)
    total = db.session.scalar(matching.with_only_columns(func.count(Referral.id)).order_by(None))
    page: list[Referral] = []
    if count:
        statement = matching.order_by(Referral.updated_at, Referral.id).limit(count + 1)
        if cursor is not None:
            at, last_id = cursor
            statement = statement.where(
                or_(
                    Referral.updated_at > at,
                    and_(Referral.updated_at == at, Referral.id > last_id),
                )
            )
        if include:
            statement = statement.options(joinedload(Referral.service_line))
        page = list(db.session.scalars(statement))
    more = len(page) > count
    page = page[:count]
    entries = [_entry(task_resource(referral, user), "match") for referral in page]
    if include:
        entries += [
            _entry(service_request_resource(referral, user), "include") for referral in page
        ]
    next_args = None
    if more:
        next_args = [
            (name, value)
            for name, value in request.args.items(multi=True)
            if name != CURSOR_PARAMETER
        ]
        next_args.append((CURSOR_PARAMETER, _cursor_of(page[-1])))
    _audit_disclosed(page)
    return fhir_response(_search_bundle("Task", entries, total, next_args))


@bp.get("/Communication")
@fhir_api("system/Communication.rs")
def search_communications():
    """Communication?based-on=ServiceRequest/<id>: the partner's timeline and our
    questions on one referral."""
    _only_parameters("Communication")
    value = _single("based-on")
    if value is None:
        raise bad_parameter("based-on", "Communication search needs based-on=ServiceRequest/<id>.")
    references = _references("based-on", value)
    if len(references) != 1:
        raise bad_parameter("based-on", "Communication search takes one ServiceRequest.")
    user = g.fhir_client.user
    referral = db.session.scalar(visible_referrals(user).where(Referral.reference == references[0]))
    entries: list[dict[str, Any]] = []
    if referral is not None:  # another partner's: nothing, as for a missing one
        g.fhir_audit_target = referral
        events = services.timeline(referral, user)
        headline = lambda event: services.event_headline(event, user)  # noqa: E731
        entries = [
            _entry(resource, "match")
            for resource in communication_resources(referral, user, events, headline)
        ]
    return fhir_response(_search_bundle("Communication", entries, len(entries), None))


@bp.get("/CodeSystem/<resource_id>")
def read_code_system(resource_id: str):
    """Our published CodeSystems (no token: terminology is public)."""
    systems = code_systems()
    if resource_id not in systems:
        raise FhirError(404, f"No such CodeSystem: this server publishes {', '.join(systems)}.")
    build = systems[resource_id]
    return fhir_response(build())


# --- The CapabilityStatement --------------------------------------------------------

SMART_OAUTH_URIS = "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"


def _search_param(name: str, kind: str, definition: str, documentation: str) -> dict[str, str]:
    return {
        "name": name,
        "type": kind,
        "definition": definition,
        "documentation": documentation,
    }


def capability_statement() -> dict[str, Any]:
    from portal.fhir.auth import token_endpoint_url  # noqa: PLC0415 - auth imports us
    from portal.fhir.bundle import EVENTS, MESSAGE_EVENTS_SYSTEM  # noqa: PLC0415

    base = _base()
    # Canonical names of the events (as our CodeSystems', under PORTAL_BASE_URL).
    definitions = MESSAGE_EVENTS_SYSTEM.rsplit("/CodeSystem/", 1)[0] + "/MessageDefinition"
    read = [{"code": "read"}]
    conditional = {
        "versioning": "versioned",
        "readHistory": False,
        "conditionalRead": "not-match",
    }
    resources = [
        {
            "type": "Task",
            "documentation": "The receiver's Task of each referral the client's partner "
            "sent (id = the referral reference). Poll with _lastUpdated=gt<the newest "
            "meta.lastUpdated seen> (exact to the microsecond). Search pages with a next "
            "link; _count "
            f"takes 0 to {MAX_COUNT} (default {DEFAULT_COUNT}).",
            "interaction": [{"code": "read"}, {"code": "search-type"}],
            **conditional,
            "searchInclude": ["Task:focus"],
            "searchParam": [
                _search_param(
                    "_lastUpdated",
                    "date",
                    "http://hl7.org/fhir/SearchParameter/Resource-lastUpdated",
                    "A FHIR instant with prefix gt, ge, lt, le or eq (DSTU1's >, >=, <, <= "
                    "read as those); at most twice.",
                ),
                _search_param(
                    "status",
                    "token",
                    "http://hl7.org/fhir/SearchParameter/Task-status",
                    "Task.status codes, comma-separated.",
                ),
                _search_param(
                    "business-status",
                    "token",
                    "http://hl7.org/fhir/SearchParameter/Task-business-status",
                    f"Codes of {BUSINESS_STATUS_SYSTEM}, comma-separated.",
                ),
                _search_param(
                    "based-on",
                    "reference",
                    "http://hl7.org/fhir/SearchParameter/Task-based-on",
                    "ServiceRequest/<id>, comma-separated.",
                ),
            ],
        },
        {
            "type": "ServiceRequest",
            "documentation": "The referral as the client sent it (id = the referral reference).",
            "interaction": read,
            **conditional,
        },
        {
            "type": "Communication",
            "documentation": "A referral's questions (category needs-info) and the updates "
            "on its timeline, as the referring office sees them.",
            "interaction": [{"code": "search-type"}],
            "searchParam": [
                _search_param(
                    "based-on",
                    "reference",
                    "http://hl7.org/fhir/SearchParameter/Communication-based-on",
                    "One ServiceRequest/<id> (required).",
                )
            ],
        },
        {
            "type": "Appointment",
            "documentation": "A referral's first visit once booked (id = the referral reference).",
            "interaction": read,
            **conditional,
        },
        {
            "type": "CodeSystem",
            "documentation": "Our code systems (no token needed).",
            "interaction": read,
        },
    ]
    statement = {
        "resourceType": "CapabilityStatement",
        "status": "active",
        "date": "2026-11-30",
        "publisher": current_app.config["PRACTICE_NAME"],
        "kind": "instance",
        "software": {"name": "Referral portal"},
        "implementation": {
            "description": f"{current_app.config['PRACTICE_NAME']} referral portal",
            "url": base.rstrip("/"),
        },
        "fhirVersion": FHIR_VERSION,
        "format": ["json", FHIR_JSON],
        "rest": [
            {
                "mode": "server",
                "security": {
                    "extension": [
                        {
                            "url": SMART_OAUTH_URIS,
                            "extension": [{"url": "token", "valueUri": token_endpoint_url()}],
                        }
                    ],
                    "service": [
                        {
                            "coding": [
                                {
                                    "system": "http://terminology.hl7.org/CodeSystem/"
                                    "restful-security-service",
                                    "code": "SMART-on-FHIR",
                                }
                            ]
                        }
                    ],
                    "description": "SMART Backend Services: client_credentials with a "
                    "private_key_jwt assertion (RS384 or ES384) or a client secret; "
                    "system/ scopes.",
                },
                "resource": resources,
                "operation": [
                    {
                        "name": "process-message",
                        "definition": "http://hl7.org/fhir/OperationDefinition/"
                        "MessageHeader-process-message",
                    }
                ],
            }
        ],
        "messaging": [
            {
                "endpoint": [
                    {
                        "protocol": {
                            "system": "http://terminology.hl7.org/CodeSystem/message-transport",
                            "code": "http",
                        },
                        "address": f"{base}$process-message",
                    }
                ],
                "documentation": "Events (MessageHeader.eventCoding of "
                f"{MESSAGE_EVENTS_SYSTEM}): {', '.join(EVENTS)}.",
                "supportedMessage": [
                    {"mode": "receiver", "definition": f"{definitions}/{event}"} for event in EVENTS
                ],
            }
        ],
    }
    return checked(CapabilityStatement, statement)


@bp.get("/metadata")
def metadata():
    """The CapabilityStatement (no token: a client reads it before it has one)."""
    return fhir_response(capability_statement())
