"""Hostile and foreign messages to POST /fhir/$process-message: each is a 4xx
OperationOutcome naming the element to fix, and nothing is stored."""

from __future__ import annotations

import base64
import json

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEntry
from tests.fixtures.fhir_messages import (
    bearer,
    code_service_lines,
    counts,
    entry,
    fhir_token,
    referral_message,
    resource_of,
)

URL = "/fhir/$process-message"
PATIENT = "Bundle.entry[2].resource"
PRACTITIONER = "Bundle.entry[3].resource"
SERVICE_REQUEST = "Bundle.entry[1].resource"


@pytest.fixture
def token(app, desk) -> str:
    with app.app_context():
        code_service_lines(desk)
        return fhir_token(desk.partner_a_id)


def refused(app, client, token, body, *, status, expression=None, headers=None):
    """Send `body`; assert the refusal and that nothing was stored. Returns the issues."""
    with app.app_context():
        before = counts()
    if not isinstance(body, bytes | str):
        body = json.dumps(body)
    response = client.post(URL, data=body, headers=headers or bearer(token))
    assert response.status_code == status, response.get_data(as_text=True)[:2000]
    assert response.mimetype == "application/fhir+json"
    outcome = response.get_json()
    assert outcome["resourceType"] == "OperationOutcome"
    issues = outcome["issue"]
    assert issues and all(issue["diagnostics"] for issue in issues)
    if expression is not None:
        assert expression in [e for issue in issues for e in issue.get("expression", [])], issues
    with app.app_context():
        db.session.remove()
        assert counts() == before
    return issues


def test_not_json(app, client, token):
    refused(app, client, token, b"\xff{not json", status=400, expression="Bundle")
    refused(app, client, token, "[1, NaN]", status=400, expression="Bundle")


def test_wrong_content_type(app, client, token):
    headers = {**bearer(token), "Content-Type": "text/plain"}
    refused(app, client, token, referral_message(), status=415, headers=headers)
    headers = {**bearer(token), "Content-Type": "application/x-www-form-urlencoded"}
    refused(app, client, token, "a=b", status=415, headers=headers)


def test_ten_megabytes(app, client, token):
    body = (
        b'{"resourceType":"Bundle","type":"message","entry":[],"x":"'
        + b"a" * (10 * 1024 * 1024)
        + b'"}'
    )
    refused(app, client, token, body, status=413, expression="Bundle")


def test_a_refusal_from_the_framework_is_an_outcome_and_audited(app, client, token):
    """A body past the app's MAX_CONTENT_LENGTH is refused by werkzeug inside the view,
    not by our own checks: still an OperationOutcome, still in the audit log."""
    app.config.update(MAX_CONTENT_LENGTH=4096, FHIR_MAX_BODY_BYTES=1024 * 1024)
    body = json.dumps(referral_message()) + " " * 8192
    refused(app, client, token, body, status=413)
    with app.app_context():
        statuses = db.session.scalars(
            select(AuditEntry.detail).where(AuditEntry.action == "fhir.process_message")
        ).all()
    assert [detail["status"] for detail in statuses] == [413]


def test_deep_nesting(app, client, token):
    refused(app, client, token, "[" * 10_000 + "]" * 10_000, status=400, expression="Bundle")
    deep = referral_message()
    nested: dict = {"url": "http://example.org/x", "valueString": "x"}
    for _ in range(100):
        nested = {"url": "http://example.org/x", "extension": [nested]}
    resource_of(deep, "Patient")["extension"] = [nested]
    refused(app, client, token, deep, status=400, expression="Bundle")


def test_wrong_resource_type(app, client, token):
    refused(
        app,
        client,
        token,
        {"resourceType": "Patient", "name": [{"family": "X"}]},
        status=400,
        expression="Bundle.resourceType",
    )
    refused(app, client, token, [1, 2], status=400, expression="Bundle.resourceType")
    message = referral_message()
    message["entry"][2]["resource"]["resourceType"] = "Pateint"
    refused(app, client, token, message, status=400, expression=f"{PATIENT}.resourceType")
    message = referral_message()
    message["entry"][2]["resource"]["contained"] = [{"resourceType": "Nonsense", "id": "x"}]
    refused(app, client, token, message, status=400)


def test_ten_thousand_entries(app, client, token):
    message = referral_message()
    message["entry"] += [entry({"resourceType": "Basic", "code": {"text": "x"}})] * 10_000
    refused(app, client, token, message, status=413, expression="Bundle.entry")


def test_duplicate_full_urls(app, client, token):
    message = referral_message()
    message["entry"][3]["fullUrl"] = message["entry"][2]["fullUrl"]
    issues = refused(app, client, token, message, status=422, expression="Bundle.entry[3].fullUrl")
    assert issues[0]["code"] == "duplicate"


def test_bundle_must_be_a_message_with_its_header_first(app, client, token):
    message = referral_message()
    message["type"] = "collection"
    refused(app, client, token, message, status=422, expression="Bundle.type")
    message = referral_message()
    message["entry"][0], message["entry"][1] = message["entry"][1], message["entry"][0]
    refused(app, client, token, message, status=422, expression="Bundle.entry[0].resource")


def test_unresolvable_focus_and_references(app, client, token):
    message = referral_message()
    message["entry"][0]["resource"]["focus"] = [{"reference": "urn:uuid:nowhere"}]
    refused(app, client, token, message, status=422, expression="Bundle.entry[0].resource.focus[0]")
    message = referral_message()
    resource_of(message, "ServiceRequest")["subject"] = {"reference": "Patient/elsewhere"}
    refused(app, client, token, message, status=422, expression=f"{SERVICE_REQUEST}.subject")


@pytest.mark.parametrize("header_id", ["a" * 65, "a" * 100_000, "", "a b"])
def test_message_header_ids(app, client, token, header_id):
    message = referral_message()
    message["entry"][0]["resource"]["id"] = header_id
    refused(app, client, token, message, status=400, expression="Bundle.entry[0].resource.id")


def test_events_of_another_guide(app, client, token):
    message = referral_message()
    message["entry"][0]["resource"]["eventCoding"] = {
        "system": "https://fhir.nhs.uk/CodeSystem/message-events-bars",
        "code": "servicerequest-request",
    }
    refused(
        app, client, token, message, status=422, expression="Bundle.entry[0].resource.eventCoding"
    )


def test_an_nhs_referral_is_refused_clearly(app, client, token):
    """An English e-RS/BaRS-style message: NHS number, ODS/SDS identifiers, no NPI, a
    UK phone, a service we do not know."""
    message = referral_message()
    patient = resource_of(message, "Patient")
    patient["identifier"] = [{"system": "https://fhir.nhs.uk/Id/nhs-number", "value": "9000000009"}]
    patient["telecom"] = [{"system": "phone", "value": "020 7946 0958", "rank": 1}]
    resource_of(message, "Practitioner")["identifier"] = [
        {"system": "https://fhir.nhs.uk/Id/sds-user-id", "value": "G12345678"}
    ]
    issues = refused(
        app, client, token, message, status=422, expression=f"{PRACTITIONER}.identifier"
    )
    assert "http://hl7.org/fhir/sid/us-npi" in issues[0]["diagnostics"]
    # With an NPI, the UK number is still no phone we can call.
    resource_of(message, "Practitioner")["identifier"].append(
        {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}
    )
    refused(app, client, token, message, status=422, expression=f"{PATIENT}.telecom[0].value")


def test_unknown_service_code(app, client, token):
    issues = refused(
        app,
        client,
        token,
        referral_message(code="999999999"),
        status=422,
        expression=f"{SERVICE_REQUEST}.code",
    )
    assert issues[0]["code"] == "code-invalid"


def test_bad_npi_checksum(app, client, token):
    message = referral_message()
    resource_of(message, "Practitioner")["identifier"][0]["value"] = "1234567890"
    issues = refused(
        app,
        client,
        token,
        message,
        status=422,
        expression=f"{PRACTITIONER}.identifier[0].value",
    )
    assert "check" in issues[0]["diagnostics"]


@pytest.mark.parametrize("given", ["Zeph\x00yrine", "Z" * 100_000, "Zeph\u202eyrine"])
def test_hostile_names(app, client, token, given):
    message = referral_message()
    resource_of(message, "Patient")["name"][0]["given"] = [given]
    refused(app, client, token, message, status=422, expression=f"{PATIENT}.name[0].given")


@pytest.mark.parametrize("system", ["http://snomed.info/sct\x00", "\x00"])
def test_a_control_character_in_the_service_code_is_no_service_line(app, client, token, system):
    message = referral_message()
    resource_of(message, "ServiceRequest")["code"]["coding"][0]["system"] = system
    refused(app, client, token, message, status=422, expression=f"{SERVICE_REQUEST}.code")


@pytest.mark.parametrize(
    ("kind", "element"), [("Patient", "given"), ("Patient", "prefix"), ("Practitioner", "given")]
)
def test_a_null_in_a_names_parts_is_skipped(app, client, token, kind, element):
    message = referral_message()
    name = resource_of(message, kind)["name"][0]
    name[element] = [None, *name.get(element, ["Dr."])]
    response = client.post(URL, data=json.dumps(message), headers=bearer(token))
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]


@pytest.mark.parametrize("endpoint", ["urn:ehr\x00", "x" * 100_000])
def test_a_senders_endpoint_that_is_not_plain_text_is_not_echoed(app, client, token, endpoint):
    message = referral_message()
    message["entry"][0]["resource"]["source"] = {"endpoint": endpoint}
    response = client.post(URL, data=json.dumps(message), headers=bearer(token))
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    header = response.get_json()["entry"][0]["resource"]
    assert "destination" not in header


def test_integers_overflowing_64_bits(app, client, token):
    message = referral_message()
    resource_of(message, "Patient")["telecom"][0]["rank"] = 2**64 + 1
    refused(app, client, token, message, status=400, expression=f"{PATIENT}.telecom[0].rank")
    message = referral_message()
    resource_of(message, "Patient")["multipleBirthInteger"] = 7
    body = json.dumps(message).replace(
        '"multipleBirthInteger": 7', '"multipleBirthInteger": 1' + "0" * 5000
    )
    refused(app, client, token, body, status=400)


@pytest.mark.parametrize(
    ("birth_date", "status"),
    [("1961-02-30", 400), ("not a date", 400), ("3000-01-01", 422), ("1961", 422)],
)
def test_bad_dates(app, client, token, birth_date, status):
    """Not a date at all: FHIR's own check (400); a date the form refuses (in the future,
    or only a year): 422."""
    message = referral_message()
    resource_of(message, "Patient")["birthDate"] = birth_date
    refused(app, client, token, message, status=status, expression=f"{PATIENT}.birthDate")


def test_required_codes(app, client, token):
    message = referral_message(priority="whenever")
    resource_of(message, "ServiceRequest")["status"] = "draft"
    resource_of(message, "Consent")["status"] = "inactive"
    issues = refused(app, client, token, message, status=422)
    paths = {e for issue in issues for e in issue["expression"]}
    assert {f"{SERVICE_REQUEST}.status", f"{SERVICE_REQUEST}.priority"} <= paths
    assert "Bundle.entry[5].resource.status" in paths


def test_no_consent_to_contact(app, client, token):
    message = referral_message()
    resource_of(message, "Consent")["provision"] = {"type": "deny"}
    refused(app, client, token, message, status=422, expression="Bundle.entry[5].resource")


def test_documents_are_checked_like_uploads(app, client, token):
    fake = referral_message(documents=[("Letter", b"MZ\x90\x00 not a pdf", "application/pdf")])
    issues = refused(app, client, token, fake, status=422)
    assert "Letter.pdf" in issues[0]["diagnostics"]
    lying = referral_message(documents=[("Letter", b"\x89PNG\r\n\x1a\n....", "application/pdf")])
    refused(
        app,
        client,
        token,
        lying,
        status=422,
        expression="Bundle.entry[7].resource.content[0].attachment.contentType",
    )
    bad = referral_message(documents=[("Letter", b"%PDF-1.4", "application/pdf")])
    resource_of(bad, "DocumentReference")["content"][0]["attachment"]["data"] = "!!!"
    refused(
        app,
        client,
        token,
        bad,
        status=400,
        expression="Bundle.entry[7].resource.content[0].attachment.data",
    )
    linked = referral_message(documents=[("Letter", b"%PDF-1.4", "application/pdf")])
    attachment = resource_of(linked, "DocumentReference")["content"][0]["attachment"]
    del attachment["data"]
    attachment["url"] = "https://ehr.example/doc/1"
    refused(
        app,
        client,
        token,
        linked,
        status=422,
        expression="Bundle.entry[7].resource.content[0].attachment.data",
    )


def test_no_token_no_entry(app, client, token):
    headers = {"Content-Type": "application/fhir+json"}
    refused(app, client, token, referral_message(), status=401, headers=headers)


def test_a_base64_bomb_of_documents_is_bounded(app, client, token):
    big = base64.b64encode(b"%PDF-" + b"0" * (7 * 1024 * 1024)).decode()
    message = referral_message(documents=[("Letter", b"%PDF-", "application/pdf")])
    resource_of(message, "DocumentReference")["content"][0]["attachment"]["data"] = big
    refused(app, client, token, message, status=413, expression="Bundle")
