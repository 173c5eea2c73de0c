"""Reading a FHIR message: the body (bounded), the Bundle (fhir.resources' R4B models),
and the checks those models do not make (docs/fhir.md, "Messages").

Every refusal names the element it is about as a FHIRPath, e.g.
`Bundle.entry[3].resource.birthDate`, one OperationOutcome issue per problem:

- 413: a body over FHIR_MAX_BODY_BYTES (refused before it is read whole), or more than
  MAX_ENTRIES entries;
- 415: not application/fhir+json or application/json;
- 400: not JSON, nested deeper than MAX_DEPTH, not a Bundle, or a resource the R4B
  models refuse (a bad date, an integer out of range, an unknown element);
- 422: a valid Bundle that is not a message we take (not type message, MessageHeader
  not first, an event we do not handle, a focus or reference that resolves to nothing
  inside the Bundle, duplicate fullUrls).

Events (MessageHeader.eventCoding): the codes of EVENTS in our own CodeSystem
MESSAGE_EVENTS_SYSTEM. A coding without a system is taken too (the three codes are
unambiguous here and some engines send the bare code); a coding from any other system
is refused, so an event of another guide is never mistaken for ours.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from fhir.resources.R4B import get_fhir_model_class
from flask import current_app, request
from pydantic import ValidationError

from portal.fhir import CODE_SYSTEM_BASE, FHIR_JSON
from portal.fhir.outcomes import FhirError, fhir_response

# Our published CodeSystems (docs/fhir.md): the message events, and the two consents.
MESSAGE_EVENTS_SYSTEM = f"{CODE_SYSTEM_BASE}/message-events"
CONSENT_KINDS_SYSTEM = f"{CODE_SYSTEM_BASE}/consent-kinds"

# Event -> the scope a client needs to send it.
EVENTS = {
    "add-service-request": "system/ServiceRequest.c",
    "revoke-service-request": "system/ServiceRequest.u",
    "add-communication": "system/Communication.c",
}
ACCEPTED_TYPES = (FHIR_JSON, "application/json")
# A referral message is a dozen resources; a few documents more.
MAX_ENTRIES = 100
# FHIR resources nest a dozen levels at most (extensions in extensions included).
MAX_DEPTH = 64
MAX_ID_LENGTH = 64
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*")


@dataclass
class Issue:
    diagnostics: str
    expression: str
    code: str = "invalid"


class MessageRefused(FhirError):
    """A refusal with one issue per problem (FhirError carries one)."""

    def __init__(self, status: int, issues: list[Issue]) -> None:
        super().__init__(status, issues[0].diagnostics, expression=issues[0].expression)
        self.issues = issues

    def response(self):
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [
                {
                    "severity": "error",
                    "code": issue.code,
                    "diagnostics": issue.diagnostics,
                    "expression": [issue.expression],
                }
                for issue in self.issues
            ],
        }
        return fhir_response(outcome, self.status)


def refuse(status: int, diagnostics: str, expression: str, code: str | None = None):
    return MessageRefused(
        status,
        [Issue(diagnostics, expression, code or ("processing" if status == 422 else "invalid"))],
    )


# --- The body ----------------------------------------------------------------------


def read_body() -> dict[str, Any]:
    """The request's JSON object, within bounds: 415, 413 or 400 otherwise."""
    if request.mimetype not in ACCEPTED_TYPES:
        raise refuse(
            415,
            "Send the message as application/fhir+json (or application/json).",
            "Bundle",
            "not-supported",
        )
    limit = int(current_app.config["FHIR_MAX_BODY_BYTES"])
    too_large = refuse(
        413,
        f"The message is larger than {limit} bytes: send fewer or smaller documents.",
        "Bundle",
        "too-costly",
    )
    if request.content_length is not None and request.content_length > limit:
        raise too_large
    raw = request.stream.read(limit + 1)
    if len(raw) > limit:
        raise too_large
    try:
        data = json.loads(raw.decode("utf-8"), parse_constant=_no_constant)
    except RecursionError:
        raise _too_deep() from None
    except (UnicodeDecodeError, ValueError):
        raise refuse(400, "The body is not JSON (UTF-8): send a FHIR Bundle.", "Bundle") from None
    _check_depth(data)
    if not isinstance(data, dict) or data.get("resourceType") != "Bundle":
        raise refuse(
            400,
            "Send a Bundle resource (resourceType Bundle, type message).",
            "Bundle.resourceType",
            "structure",
        )
    return data


def _no_constant(name: str) -> None:
    raise ValueError(name)  # NaN and Infinity are not JSON


def _too_deep() -> MessageRefused:
    return refuse(400, f"The JSON is nested more than {MAX_DEPTH} levels deep.", "Bundle")


def _check_depth(data: Any) -> None:
    stack = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if depth > MAX_DEPTH:
            raise _too_deep()
        if isinstance(value, dict):
            stack.extend((child, depth + 1) for child in value.values())
        elif isinstance(value, list):
            stack.extend((child, depth + 1) for child in value)


# --- The Bundle --------------------------------------------------------------------


@dataclass
class Entry:
    index: int
    full_url: str
    resource: dict[str, Any]  # the JSON, validated by its R4B model

    @property
    def path(self) -> str:
        return f"Bundle.entry[{self.index}].resource"

    @property
    def type(self) -> str:
        return self.resource["resourceType"]


@dataclass
class Message:
    header: dict[str, Any]
    header_id: str
    event: str
    entries: list[Entry]
    by_full_url: dict[str, Entry] = field(default_factory=dict)

    def resolve(self, reference: Any, path: str, *types: str) -> Entry:
        """The entry a Reference names inside the Bundle (its fullUrl, or a relative
        `Type/id`), of one of `types`; 422 naming `path` otherwise."""
        target = reference.get("reference") if isinstance(reference, dict) else None
        found = self.find(target) if isinstance(target, str) else None
        if found is None:
            raise refuse(
                422,
                "This reference resolves to no entry of the Bundle: reference an entry by its "
                "fullUrl (urn:uuid:... or Type/id).",
                path,
            )
        if types and found.type not in types:
            raise refuse(422, f"This reference must name a {' or '.join(types)}.", path)
        return found

    def find(self, target: str) -> Entry | None:
        if target in self.by_full_url:
            return self.by_full_url[target]
        if re.fullmatch(r"[A-Za-z]+/[A-Za-z0-9\-.]{1,64}", target):
            kind, _, ident = target.partition("/")
            for entry in self.entries:
                if entry.type == kind and (
                    entry.resource.get("id") == ident or entry.full_url.endswith("/" + target)
                ):
                    return entry
        return None

    def of_type(self, kind: str) -> list[Entry]:
        return [entry for entry in self.entries if entry.type == kind]


def fhir_path(prefix: str, location: tuple) -> str:
    """A pydantic error location as FHIRPath below `prefix`."""
    path = prefix
    for part in location:
        if isinstance(part, int):
            path += f"[{part}]"
        elif isinstance(part, str) and NAME.fullmatch(part):
            path += "." + part.removesuffix("__ext")
    return path


def _model_issues(kind: str, value: dict[str, Any], prefix: str) -> list[Issue]:
    try:
        model = get_fhir_model_class(kind)
    except (KeyError, ValueError):
        return [Issue(f"{kind[:40]!r} is not an R4 resource type.", f"{prefix}.resourceType")]
    try:
        model.model_validate(value)
    except ValidationError as error:
        return [
            Issue(item["msg"][:300], fhir_path(prefix, item["loc"]), "value")
            for item in error.errors(include_url=False, include_input=False)[:20]
        ]
    except (KeyError, ValueError, TypeError, RecursionError):
        # A contained resource of an unknown type, and the like.
        return [Issue("This resource is not valid R4 (check contained resources).", prefix)]
    return []


def parse_message(data: dict[str, Any]) -> Message:
    """The message Bundle, checked; MessageRefused (400/413/422) otherwise."""
    raw_entries = data.get("entry")
    if not isinstance(raw_entries, list) or not raw_entries:
        raise refuse(
            400, "A message Bundle needs entries, the MessageHeader first.", "Bundle.entry"
        )
    if len(raw_entries) > MAX_ENTRIES:
        raise refuse(
            413, f"A message may hold at most {MAX_ENTRIES} entries.", "Bundle.entry", "too-costly"
        )
    issues: list[Issue] = []
    shell = {key: value for key, value in data.items() if key != "entry"}
    shell["entry"] = [
        {k: v for k, v in entry.items() if k != "resource"} if isinstance(entry, dict) else entry
        for entry in raw_entries
    ]
    issues += _model_issues("Bundle", shell, "Bundle")
    entries: list[Entry] = []
    for index, entry in enumerate(raw_entries):
        resource = entry.get("resource") if isinstance(entry, dict) else None
        prefix = f"Bundle.entry[{index}].resource"
        if not isinstance(resource, dict) or not isinstance(resource.get("resourceType"), str):
            issues.append(Issue("Each entry needs a resource with a resourceType.", prefix))
            continue
        found = _model_issues(resource["resourceType"], resource, prefix)
        issues += found
        if not found:
            entries.append(Entry(index, entry.get("fullUrl") or "", resource))
    if issues:
        raise MessageRefused(400, issues)

    if data.get("type") != "message":
        issues.append(Issue("Bundle.type must be message.", "Bundle.type", "processing"))
    by_full_url: dict[str, Entry] = {}
    for entry in entries:
        where = f"Bundle.entry[{entry.index}].fullUrl"
        if not entry.full_url:
            issues.append(Issue("Each entry needs a fullUrl (urn:uuid:...).", where, "required"))
        elif entry.full_url in by_full_url:
            issues.append(Issue("This fullUrl is used by an earlier entry.", where, "duplicate"))
        else:
            by_full_url[entry.full_url] = entry
    if entries[0].type != "MessageHeader" or entries[0].index != 0:
        issues.append(
            Issue(
                "The first entry must be the MessageHeader.",
                "Bundle.entry[0].resource",
                "structure",
            )
        )
    if issues:
        raise MessageRefused(422, issues)

    header = entries[0].resource
    header_path = "Bundle.entry[0].resource"
    header_id = header.get("id")
    if header_id and len(header_id) > MAX_ID_LENGTH:  # R4's id is at most 64 characters
        raise refuse(400, f"An id is at most {MAX_ID_LENGTH} characters.", f"{header_path}.id")
    if not header_id:
        raise refuse(
            422,
            "The MessageHeader needs an id (resends are known by it).",
            f"{header_path}.id",
            "required",
        )
    coding = header.get("eventCoding")
    if not isinstance(coding, dict):
        raise refuse(
            422,
            f"Name the event as eventCoding from {MESSAGE_EVENTS_SYSTEM}.",
            f"{header_path}.eventCoding",
        )
    code, system = coding.get("code"), coding.get("system")
    if code not in EVENTS or system not in (None, MESSAGE_EVENTS_SYSTEM):
        raise refuse(
            422,
            f"This server takes the events {', '.join(EVENTS)} of {MESSAGE_EVENTS_SYSTEM}.",
            f"{header_path}.eventCoding",
            "not-supported",
        )
    message = Message(header, header_id, code, entries, by_full_url)
    focus = header.get("focus") or []
    if not focus:
        raise refuse(422, "The MessageHeader needs a focus.", f"{header_path}.focus", "required")
    for index, reference in enumerate(focus):
        message.resolve(reference, f"{header_path}.focus[{index}]")
    return message
