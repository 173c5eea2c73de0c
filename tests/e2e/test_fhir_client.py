"""An EHR's integration, end to end: fhirclient (the SMART Python client) against the
portal served on a real port, while the desk works the referral in a real browser.

The EHR signs a JWT with its own key (ES384, PyJWT), fhirclient finds the token endpoint
in the CapabilityStatement's oauth-uris and trades the assertion for a token, posts the
referral message, reads and searches its Task, watches it move as staff act in the
web pages, answers the needs-info question with a Communication, and finally withdraws
a second referral.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fhirclient.client import FHIRClient
from fhirclient.models.communication import Communication
from fhirclient.models.task import Task
from playwright.sync_api import expect
from sqlalchemy import select

from portal.clock import utcnow
from portal.extensions import db
from portal.fhir.registry import register_client
from portal.models import FHIR_SCOPES, Partner, Referral
from tests.fixtures.browser import complete_visit, schedule_tomorrow, staff_action
from tests.fixtures.fhir_messages import code_service_lines, event_message, referral_message

pytestmark = pytest.mark.e2e


def _connect(app, desk, live_server: str) -> FHIRClient:
    """Register Alpha's EHR with a public key and let fhirclient get a token with it."""
    key = ec.generate_private_key(ec.SECP384R1())
    public = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(key.public_key()))
    with app.app_context():
        code_service_lines(desk)
        client, _ = register_client(
            db.session.get(Partner, desk.partner_a_id),
            "Alpha EHR",
            list(FHIR_SCOPES),
            created_by=None,
            jwks={"keys": [{**public, "kid": "alpha-1", "alg": "ES384", "use": "sig"}]},
        )
        db.session.commit()
        client_id = client.client_id
    now = datetime.now(UTC)
    assertion = jwt.encode(
        {
            "iss": client_id,
            "sub": client_id,
            "aud": f"{live_server}/auth/token",
            "exp": now + timedelta(minutes=4),
            "jti": str(uuid.uuid4()),
        },
        key,
        algorithm="ES384",
        headers={"kid": "alpha-1"},
    )
    smart = FHIRClient(
        settings={
            "app_id": client_id,
            "api_base": f"{live_server}/fhir/",
            "jwt_token": assertion,
            "scope": " ".join(FHIR_SCOPES),
        }
    )
    smart.prepare()  # reads /fhir/metadata: the token endpoint is in its oauth-uris
    smart.authorize()  # client_credentials with the signed assertion
    assert smart.ready
    return smart


def _task(smart: FHIRClient, task_id: str) -> tuple[str, str]:
    task = Task.read(task_id, smart.server)
    return task.status, task.businessStatus.coding[0].code


def _send(smart: FHIRClient, message: dict) -> dict:
    return smart.server.post_json("$process-message", message).json()


def test_an_ehr_follows_its_referral_as_the_desk_works_it(app, desk, live_server, signed_in_page):
    smart = _connect(app, desk, live_server)
    started = utcnow() - timedelta(seconds=1)

    reply = _send(smart, referral_message())
    task = next(e["resource"] for e in reply["entry"] if e["resource"]["resourceType"] == "Task")
    reference = task["id"]
    assert _task(smart, reference) == ("requested", "submitted")
    polled = Task.where(struct={"_lastUpdated": f"gt{started.isoformat()}"}).perform_resources(
        smart.server
    )
    assert [t.id for t in polled] == [reference]

    intake = signed_in_page(desk.intake)
    staff_action(intake, live_server, reference, "Record first touch")
    assert _task(smart, reference) == ("received", "in-review")

    staff_action(
        intake,
        live_server,
        reference,
        "Request missing information",
        {"Other questions": "Date of the last sleep study"},
    )
    assert _task(smart, reference) == ("on-hold", "needs-info")
    asked = Communication.where(
        struct={"based-on": f"ServiceRequest/{reference}"}
    ).perform_resources(smart.server)
    question = next(c for c in asked if c.category[0].coding[0].code == "needs-info")
    item = next(p for p in question.payload if p.id and p.id.startswith("item-"))

    answer = {
        "resourceType": "Communication",
        "status": "completed",
        "basedOn": [{"reference": f"ServiceRequest/{reference}"}],
        "payload": [{"id": item.id, "contentString": "March 2, 2026: AHI 31"}],
    }
    _send(smart, event_message("add-communication", answer))
    assert _task(smart, reference)[0] in ("requested", "received")
    intake.goto(f"{live_server}/referrals/{reference}")
    expect(intake.locator("li.done", has_text="Date of the last sleep study")).to_be_visible()
    with app.app_context():
        referral = db.session.scalar(select(Referral).where(Referral.reference == reference))
        assert [i.answer for i in referral.items] == ["March 2, 2026: AHI 31"]

    clinical = signed_in_page(desk.clinical)
    staff_action(
        clinical, live_server, reference, "Accept", {"Assigned provider": "Dr. Helen Park"}
    )
    assert _task(smart, reference) == ("accepted", "accepted")
    schedule_tomorrow(intake, live_server, reference)
    scheduled = Task.read(reference, smart.server)
    assert (scheduled.status, scheduled.businessStatus.coding[0].code) == (
        "in-progress",
        "scheduled",
    )
    appointment = scheduled.output[0].valueReference.reference
    assert appointment.startswith("Appointment/")
    booked = smart.server.request_json(appointment)
    assert booked["status"] == "booked"

    complete_visit(app, intake, live_server, reference)
    assert _task(smart, reference) == ("completed", "completed")

    # A second referral, withdrawn by the EHR: the desk sees it withdrawn.
    second = _send(smart, referral_message())
    withdrawn = next(
        e["resource"] for e in second["entry"] if e["resource"]["resourceType"] == "Task"
    )["id"]
    revoke = {
        "resourceType": "ServiceRequest",
        "id": withdrawn,
        "status": "revoked",
        "intent": "order",
        "subject": {"display": "the patient"},
    }
    _send(smart, event_message("revoke-service-request", revoke))
    assert _task(smart, withdrawn) == ("cancelled", "withdrawn")
    intake.goto(f"{live_server}/referrals/{withdrawn}")
    expect(intake.locator("#current-status")).to_have_text("Withdrawn")
    for page in (intake, clinical):
        assert page.js_errors == [], page.js_errors
