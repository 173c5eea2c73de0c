"""POST /fhir/$process-message: a referral sent by an EHR is the referral the web form
makes (fields, consents, timeline, SLA clocks, audit, notifications); a resent message
gets the first answer and changes nothing; revoke withdraws; add-communication answers
a needs-info request."""

from __future__ import annotations

import base64
import json
import threading

from fhir.resources.R4B.bundle import Bundle
from sqlalchemy import select

from portal.extensions import db
from portal.fhir.bundle import MESSAGE_EVENTS_SYSTEM
from portal.fhir.mapping import BUSINESS_STATUS_SYSTEM
from portal.models import (
    AuditEntry,
    Consent,
    Document,
    FhirMessage,
    OutboxMessage,
    Referral,
    ReferralEvent,
    SlaClock,
    Status,
)
from tests.fixtures.desk import PDF, user
from tests.fixtures.fhir_messages import (
    CARDIO_CODE,
    bearer,
    changed,
    code_service_lines,
    counts,
    entry,
    event_message,
    fhir_token,
    referral_message,
    resource_of,
)
from tests.integration.test_submission import form_data

URL = "/fhir/$process-message"


def setup(app, desk) -> str:
    with app.app_context():
        code_service_lines(desk)
        return fhir_token(desk.partner_a_id)


def post(client, token, bundle):
    return client.post(URL, data=json.dumps(bundle), headers=bearer(token))


def business_status(task) -> str:
    (coding,) = task["businessStatus"]["coding"]
    assert coding["system"] == BUSINESS_STATUS_SYSTEM
    return coding["code"]


def _events(referral: Referral) -> list[ReferralEvent]:
    return list(
        db.session.scalars(
            select(ReferralEvent)
            .where(ReferralEvent.referral_id == referral.id)
            .order_by(ReferralEvent.id)
        )
    )


def _snapshot(referral: Referral) -> dict:
    """What a referral is, whichever door it came through (minus who and when)."""
    columns = [
        "partner_id",
        "service_line_id",
        "status",
        "urgency",
        "referring_provider_name",
        "referring_provider_npi",
        "patient_first_name",
        "patient_last_name",
        "patient_date_of_birth",
        "patient_phone",
        "patient_email",
        "preferred_contact",
        "patient_language",
        "reason",
        "clinical_context",
        "source_channel",
    ]
    consents = db.session.scalars(select(Consent).where(Consent.referral_id == referral.id))
    events = db.session.scalars(
        select(ReferralEvent)
        .where(ReferralEvent.referral_id == referral.id)
        .order_by(ReferralEvent.id)
    )
    clocks = db.session.scalars(select(SlaClock).where(SlaClock.referral_id == referral.id))
    audit = db.session.scalars(
        select(AuditEntry.action).where(
            AuditEntry.target_type == "referral", AuditEntry.target_id == referral.reference
        )
    )
    outbox = db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.referral_id == referral.id)
    )
    snapshot = {
        "fields": {name: getattr(referral, name) for name in columns},
        "consents": sorted((c.kind, c.granted, c.wording_version) for c in consents),
        "events": [(e.kind, e.summary, e.partner_visible, e.to_status) for e in events],
        "clocks": sorted(
            (c.stage, round((c.due_at - referral.submitted_at).total_seconds() / 60))
            for c in clocks
        ),
        "audit": sorted(a for a in audit if not a.startswith("fhir.")),
        "outbox": sorted((m.channel, m.recipient, m.subject, m.purpose or "") for m in outbox),
        "documents": sorted(d.content_type for d in referral.documents),
    }
    return json.loads(json.dumps(snapshot, default=str).replace(referral.reference, "R-REF"))


def test_a_referral_message_makes_the_referral_the_web_form_makes(app, client, client_for, desk):
    token = setup(app, desk)
    web = client_for(desk.partner_a)
    response = web.post("/referrals/new", data=form_data(desk, patient_language="en"))
    assert response.status_code == 302
    with app.app_context():
        by_web = db.session.scalar(select(Referral))
        web_snapshot = _snapshot(by_web)
        # The same patient again would be a possible duplicate: the web's referral steps
        # aside (its snapshot is taken).
        by_web.patient_last_name = "Elsewhere"
        db.session.commit()

    message = referral_message()
    answer = post(client, token, message)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    assert answer.mimetype == "application/fhir+json"
    reply = answer.get_json()
    assert reply["resourceType"] == "Bundle" and reply["type"] == "message"
    Bundle.model_validate(reply)  # valid R4 (R4B's models)
    header = reply["entry"][0]["resource"]
    assert header["response"] == {
        "identifier": message["entry"][0]["resource"]["id"],
        "code": "ok",
    }
    assert header["eventCoding"] == {
        "system": MESSAGE_EVENTS_SYSTEM,
        "code": "add-service-request",
    }
    task = resource_of(reply, "Task")
    assert header["focus"] == [{"reference": f"Task/{task['id']}"}]
    assert task["status"] == "requested" and business_status(task) == "submitted"
    assert resource_of(reply, "ServiceRequest")["id"] == task["id"]

    with app.app_context():
        _by_web, by_fhir = db.session.scalars(select(Referral).order_by(Referral.id)).all()
        assert by_fhir.reference == task["id"]
        assert by_fhir.submitted_by.email.endswith("@fhir-clients.invalid")
        assert _snapshot(by_fhir) == web_snapshot
        stored = db.session.scalar(select(FhirMessage))
        assert stored.referral_id == by_fhir.id and stored.event == "add-service-request"
        audited = db.session.scalar(
            select(AuditEntry).where(AuditEntry.action == "fhir.process_message")
        )
        assert audited.target_id == by_fhir.reference
        assert "Zephyrine" not in json.dumps(audited.detail)


def test_a_resent_message_gets_the_first_answer_and_changes_nothing(app, client, desk):
    token = setup(app, desk)
    message = referral_message()
    first = post(client, token, message)
    assert first.status_code == 200
    with app.app_context():
        before = counts()
        events = db.session.query(ReferralEvent).count()
    again = post(client, token, message)
    assert again.status_code == 200
    assert again.get_data() == first.get_data()
    with app.app_context():
        assert counts() == before == (1, 1)
        assert db.session.query(ReferralEvent).count() == events


def test_copies_of_one_message_racing_make_one_referral(app, desk):
    token = setup(app, desk)
    message = referral_message()
    answers = []

    def send():
        answers.append(post(app.test_client(), token, message))

    threads = [threading.Thread(target=send) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [a.status_code for a in answers] == [200, 200, 200]
    assert len({a.get_data() for a in answers}) == 1
    with app.app_context():
        assert counts() == (1, 1)


def test_urgent_priorities_are_urgent_and_spanish_is_spanish(app, client, desk):
    token = setup(app, desk)
    message = referral_message(priority="stat")
    patient = resource_of(message, "Patient")
    patient["communication"] = [
        {"language": {"coding": [{"system": "urn:ietf:bcp:47", "code": "es"}]}}
    ]
    patient["telecom"] = [{"system": "email", "value": "z@example.com", "rank": 1}]
    assert post(client, token, message).status_code == 200
    with app.app_context():
        referral = db.session.scalar(select(Referral))
        assert referral.urgency.value == "urgent"
        assert referral.patient_language.value == "es"
        assert referral.preferred_contact.value == "email"
        assert referral.patient_phone is None


def test_missing_required_items_put_the_task_on_hold_and_a_communication_answers(app, client, desk):
    token = setup(app, desk)
    reply = post(client, token, referral_message(code=CARDIO_CODE))
    assert reply.status_code == 200, reply.get_data(as_text=True)
    task = resource_of(reply.get_json(), "Task")
    assert task["status"] == "on-hold" and business_status(task) == "needs-info"
    with app.app_context():
        referral = db.session.scalar(select(Referral))
        assert referral.status is Status.NEEDS_INFO
        reference = referral.reference

    communication = {
        "resourceType": "Communication",
        "status": "completed",
        "basedOn": [{"reference": f"ServiceRequest/{reference}"}],
        "payload": [
            {"contentString": "Medication list: Metformin 500 mg"},
            {
                "contentAttachment": {
                    "contentType": "application/pdf",
                    "title": "Echocardiogram report",
                    "data": base64.b64encode(PDF).decode(),
                }
            },
            {"contentString": "Call the patient after 3 pm."},
        ],
    }
    message = event_message("add-communication", communication)
    answer = post(client, token, message)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    task = resource_of(answer.get_json(), "Task")
    assert task["status"] == "requested" and business_status(task) == "submitted"
    with app.app_context():
        referral = db.session.scalar(select(Referral))
        assert referral.status is Status.SUBMITTED
        assert {i.label: i.answer for i in referral.items}["Medication list"] == (
            "Metformin 500 mg"
        )
        assert db.session.query(Document).count() == 1
        kinds = [e.kind for e in _events(referral)]
        assert "answer_info" in kinds and "partner_message" in kinds
    # Resent: the same answer; nothing is asked any more, nothing changes.
    again = post(client, token, message)
    assert again.get_data() == answer.get_data()
    # A new message answering again: refused, as the web form would be.
    refused = post(client, token, changed(message))
    assert refused.status_code == 409
    assert refused.get_json()["issue"][0]["expression"] == ["Bundle.entry[1].resource.basedOn[0]"]


def test_a_document_sent_with_the_referral_fills_its_required_item(app, client, desk):
    token = setup(app, desk)
    message = referral_message(
        code=CARDIO_CODE, documents=[("Echocardiogram report", PDF, "application/pdf")]
    )
    reply = post(client, token, message)
    assert reply.status_code == 200, reply.get_data(as_text=True)
    with app.app_context():
        referral = db.session.scalar(select(Referral))
        assert [i.label for i in referral.missing_items] == ["Medication list"]


def test_revoke_withdraws_and_only_when_the_web_would(app, client, desk):
    token = setup(app, desk)
    reply = post(client, token, referral_message()).get_json()
    reference = resource_of(reply, "Task")["id"]
    revoke = event_message(
        "revoke-service-request",
        {
            "resourceType": "ServiceRequest",
            "id": reference,
            "status": "revoked",
            "intent": "order",
            "subject": {"display": "the patient"},
            "note": [{"text": "Patient moved away"}],
        },
    )
    answer = post(client, token, revoke)
    assert answer.status_code == 200, answer.get_data(as_text=True)
    task = resource_of(answer.get_json(), "Task")
    assert task["status"] == "cancelled"
    with app.app_context():
        referral = db.session.scalar(select(Referral))
        assert referral.status is Status.WITHDRAWN
        assert "Withdrawn by the referring office: Patient moved away" in [
            e.summary for e in _events(referral)
        ]
    assert post(client, token, revoke).get_data() == answer.get_data()
    again = post(client, token, changed(revoke))
    assert again.status_code == 409
    assert "cannot be withdrawn" in again.get_json()["issue"][0]["diagnostics"]


def test_another_partners_referral_is_not_found(app, client, desk):
    token = setup(app, desk)
    with app.app_context():
        other = fhir_token(desk.partner_b_id)
    reference = resource_of(post(client, token, referral_message()).get_json(), "Task")["id"]
    revoke = {
        "resourceType": "ServiceRequest",
        "id": reference,
        "status": "revoked",
        "intent": "order",
        "subject": {"display": "the patient"},
    }
    theirs = post(client, other, event_message("revoke-service-request", revoke))
    revoke["id"] = "R-0000-0000"
    missing = post(client, other, event_message("revoke-service-request", revoke))
    assert theirs.status_code == missing.status_code == 404
    assert theirs.get_data() == missing.get_data()
    with app.app_context():
        assert db.session.scalar(select(Referral)).status is Status.SUBMITTED


def test_each_event_needs_its_scope(app, client, desk):
    with app.app_context():
        code_service_lines(desk)
        token = fhir_token(desk.partner_a_id, ("system/Task.rs",))
    answer = post(client, token, referral_message())
    assert answer.status_code == 403
    assert "system/ServiceRequest.c" in answer.get_json()["issue"][0]["diagnostics"]
    with app.app_context():
        assert counts() == (0, 0)


def test_a_possible_duplicate_is_409_until_the_sender_says_send_anyway(app, client, desk):
    token = setup(app, desk)
    assert post(client, token, referral_message()).status_code == 200
    second = referral_message()
    refused = post(client, token, second)
    assert refused.status_code == 409
    (issue,) = refused.get_json()["issue"]
    assert "submit-anyway" in issue["diagnostics"]
    second["entry"][0]["resource"]["meta"] = {
        "tag": [
            {
                "system": MESSAGE_EVENTS_SYSTEM.replace("message-events", "message-tags"),
                "code": "submit-anyway",
            }
        ]
    }
    assert post(client, token, second).status_code == 200
    with app.app_context():
        assert counts() == (2, 2)
        assert user(desk.partner_a) is not None


def test_an_unused_entry_may_ride_along(app, client, desk):
    token = setup(app, desk)
    message = referral_message()
    message["entry"].append(entry({"resourceType": "Organization", "name": "Alpha"}))
    assert post(client, token, message).status_code == 200


def test_payload_ids_name_the_items_and_refusals_are_in_english(app, client, desk):
    token = setup(app, desk)
    reply = post(client, token, referral_message(code=CARDIO_CODE)).get_json()
    reference = resource_of(reply, "Task")["id"]
    with app.app_context():
        items = {i.label: i.id for i in db.session.scalar(select(Referral)).items}
    communication = {
        "resourceType": "Communication",
        "status": "completed",
        "basedOn": [{"reference": f"ServiceRequest/{reference}"}],
        "payload": [{"id": f"item-{items['Echocardiogram report']}", "contentString": "x"}],
    }
    wrong = post(client, token, event_message("add-communication", communication))
    assert wrong.status_code == 422
    assert wrong.get_json()["issue"][0]["expression"] == ["Bundle.entry[1].resource.payload[0]"]
    communication["payload"] = [
        {"id": f"item-{items['Medication list']}", "contentString": "x" * 2001}
    ]
    headers = {**bearer(token), "Accept-Language": "es"}
    message = event_message("add-communication", communication)
    too_long = client.post(URL, data=json.dumps(message), headers=headers)
    assert too_long.status_code == 422
    (issue,) = too_long.get_json()["issue"]
    assert issue["expression"] == ["Bundle.entry[1].resource.payload[0].contentString"]
    assert issue["diagnostics"] == "Use at most 2,000 characters (this has 2,001)."
    communication["payload"][0]["contentString"] = "Metformin 500 mg"
    answer = post(client, token, event_message("add-communication", communication))
    assert answer.status_code == 200, answer.get_data(as_text=True)
    task = resource_of(answer.get_json(), "Task")
    assert task["status"] == "on-hold"  # the echocardiogram is still missing
    with app.app_context():
        referral = db.session.scalar(select(Referral))
        assert {i.label: i.answer for i in referral.items}["Medication list"] == (
            "Metformin 500 mg"
        )
