"""A referring office submits the minimal payload through the one-page form."""

from __future__ import annotations

import io
import re
from datetime import date, timedelta
from html import unescape

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import (
    Channel,
    Consent,
    ConsentKind,
    Document,
    MessageStatus,
    OutboxMessage,
    Referral,
    ReferralEvent,
    Status,
    Urgency,
)
from portal.referrals.consent import current_wording
from tests.fixtures.desk import PDF, VALID_NPI, make_referral


def form_data(desk, **overrides):
    data = {
        "referring_provider_name": "Dr. Ruth Adler",
        "referring_provider_npi": VALID_NPI,
        "patient_first_name": "Zephyrine",
        "patient_last_name": "Quillfeather",
        "patient_date_of_birth": "1961-03-14",
        "patient_phone": "(202) 555-0143",
        "patient_email": "zephyrine.q@example.com",
        "preferred_contact": "phone",
        "service_line": str(desk.sleep_id),
        "urgency": "routine",
        "reason": "Snoring and daytime sleepiness",
        "clinical_context": "STOP-BANG 5",
        "consent_to_contact": "y",
        "consent_to_outcome_sharing": "y",
        "submission_token": "token-" + "a" * 20,
    }
    data.update(overrides)
    return {k: v for k, v in data.items() if v is not None}


def referral_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(Referral.id)))


def test_partner_submits_a_complete_referral_and_gets_a_reference(app, client_for, desk):
    client = client_for(desk.partner_a)
    response = client.post("/referrals/new", data=form_data(desk))
    assert response.status_code == 302
    confirmation = client.get(response.headers["Location"])
    html = confirmation.get_data(as_text=True)
    assert "Referral received" in html
    reference = re.search(r'id="reference">(R-[0-9A-Z]{4}-[0-9A-Z]{4})<', html).group(1)

    with app.app_context():
        referral = db.session.scalar(select(Referral).where(Referral.reference == reference))
        assert referral.status is Status.SUBMITTED
        assert referral.partner_id == desk.partner_a_id
        assert referral.patient_phone == "+12025550143"  # normalised
        assert referral.source_channel is Channel.PORTAL
        consents = {c.kind: c for c in db.session.scalars(select(Consent))}
        contact = consents[ConsentKind.CONTACT]
        assert contact.granted and contact.attested_by.email == desk.partner_a
        assert contact.wording_version == current_wording(ConsentKind.CONTACT).version
        assert consents[ConsentKind.OUTCOME_SHARING].granted
        kinds = [e.kind for e in db.session.scalars(select(ReferralEvent))]
        assert kinds == ["submitted"]


def test_the_form_shows_consent_wording_and_labels_every_input(client_for, desk):
    page = client_for(desk.partner_a).get("/referrals/new", follow_redirects=True)
    html = page.get_data(as_text=True)
    assert current_wording(ConsentKind.CONTACT).text in html
    assert current_wording(ConsentKind.CONTACT).version in html
    tags = re.findall(r"<(?:input|select|textarea)[^>]*>", html)
    ids = [re.search(r'\bid="([^"]+)"', tag).group(1) for tag in tags if 'type="hidden"' not in tag]
    labelled = set(re.findall(r'<label[^>]*for="([^"]+)"', html))
    missing = [i for i in ids if i not in labelled]
    assert not missing, f"inputs without a visible label: {missing}"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("referring_provider_npi", "1234567890", "This NPI is not valid"),
        ("referring_provider_npi", "12345", "Enter the 10-digit NPI"),
        ("patient_date_of_birth", (date.today() + timedelta(days=2)).isoformat(), "in the past"),
        ("patient_date_of_birth", "1890-01-01", "more than 120 years ago"),
        ("patient_date_of_birth", "not-a-date", "Not a valid date value"),
        ("patient_phone", "call me", "Enter a phone number"),
        ("patient_phone", "12", "This phone number is not valid"),
        ("patient_phone", "(202) 000-0000", "not valid"),
        ("patient_email", "not-an-email", "Enter an email address like"),
        ("patient_first_name", "", "Enter the patient's first name"),
        ("patient_first_name", "x" * 101, "Use at most 100 characters"),
        ("reason", "x" * 501, "Use at most 500 characters"),
        ("clinical_context", "x" * 5001, "Use at most 5,000 characters"),
        ("referring_provider_name", "x" * 121, "Use at most 120 characters"),
        ("source_code", "has spaces!", "Use letters, digits"),
        ("consent_to_contact", None, "must consent to be contacted"),
        ("service_line", "", "Choose the service line"),
    ],
)
def test_invalid_fields_are_refused_with_a_message_and_nothing_is_stored(
    app, client_for, desk, field, value, message
):
    client = client_for(desk.partner_a)
    response = client.post("/referrals/new", data=form_data(desk, **{field: value}))
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "There is a problem" in html
    assert message in unescape(html)
    assert f'href="#{field}' in html  # the summary links to the field
    assert referral_count(app) == 0
    # What the user typed is kept.
    assert 'value="Quillfeather"' in html or field == "patient_last_name"


def test_at_least_one_way_to_reach_the_patient(app, client_for, desk):
    client = client_for(desk.partner_a)
    response = client.post(
        "/referrals/new", data=form_data(desk, patient_phone="", patient_email="")
    )
    assert response.status_code == 422
    assert "Give a phone number or an email address" in response.get_data(as_text=True)
    assert referral_count(app) == 0


def test_preferred_contact_must_match_what_was_given(app, client_for, desk):
    client = client_for(desk.partner_a)
    response = client.post(
        "/referrals/new", data=form_data(desk, patient_email="", preferred_contact="email")
    )
    assert response.status_code == 422
    assert "Add the patient's email address" in unescape(response.get_data(as_text=True))


def test_documents_are_accepted_by_content_and_refused_otherwise(app, client_for, desk):
    client = client_for(desk.partner_a)
    disguised = (io.BytesIO(b"#!/bin/sh\necho not a pdf"), "labs.pdf")
    response = client.post(
        "/referrals/new",
        data=form_data(desk, documents=[disguised]),
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    assert "“labs.pdf” is not a PDF, PNG or JPEG file." in response.get_data(as_text=True)
    assert referral_count(app) == 0

    response = client.post(
        "/referrals/new",
        data=form_data(desk, documents=[(io.BytesIO(PDF), "labs.pdf")]),
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    with app.app_context():
        document = db.session.scalar(select(Document))
        assert document.content_type == "application/pdf"
        assert document.content == PDF


def test_an_oversized_document_is_refused(app, client_for, desk):
    app.config["DOCUMENT_MAX_BYTES"] = 1024
    client = client_for(desk.partner_a)
    big = (io.BytesIO(b"%PDF-" + b"0" * 2048), "big.pdf")
    response = client.post(
        "/referrals/new", data=form_data(desk, documents=[big]), content_type="multipart/form-data"
    )
    assert response.status_code == 422
    assert "“big.pdf” is larger than" in response.get_data(as_text=True)


def test_submitting_the_same_form_twice_creates_one_referral(app, client_for, desk):
    client = client_for(desk.partner_a)
    first = client.post("/referrals/new", data=form_data(desk))
    second = client.post("/referrals/new", data=form_data(desk))
    assert first.status_code == second.status_code == 302
    assert first.headers["Location"] == second.headers["Location"]
    assert referral_count(app) == 1
    page = client.get(second.headers["Location"]).get_data(as_text=True)
    assert "already received" in page


def test_urgent_referral_notifies_on_call_intake_without_patient_data(app, client_for, desk):
    client = client_for(desk.partner_a)
    assert client.post("/referrals/new", data=form_data(desk, urgency="urgent")).status_code == 302
    with app.app_context():
        message = db.session.scalar(
            select(OutboxMessage).where(
                OutboxMessage.recipient == app.config["INTAKE_ONCALL_EMAIL"]
            )
        )
        assert message.status is MessageStatus.PENDING
        assert "URGENT" in message.subject
        for secret in ("Zephyrine", "Quillfeather", "1961", "555", "zephyrine.q"):
            assert secret not in message.body and secret not in message.subject


def test_urgent_referrals_go_to_the_top_of_the_queue(app, client_for, desk):
    with app.app_context():
        older_routine = make_referral(desk)
        urgent = make_referral(desk, urgency=Urgency.URGENT)
    html = client_for(desk.intake).get("/queue").get_data(as_text=True)
    assert html.index(urgent) < html.index(older_routine)


def test_missing_required_items_route_to_needs_info_with_the_list(app, client_for, desk):
    client = client_for(desk.partner_a)
    data = form_data(
        desk,
        service_line=str(desk.cardio_id),
        **{f"item_{desk.meds_item_id}": "Aspirin 81 mg"},
    )
    response = client.post("/referrals/new", data=data, content_type="multipart/form-data")
    assert response.status_code == 302
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert "This referral is missing: Echocardiogram report" in page
    with app.app_context():
        referral = db.session.scalar(select(Referral))
        assert referral.status is Status.NEEDS_INFO
        assert [i.label for i in referral.missing_items] == ["Echocardiogram report"]
        provided = [i for i in referral.items if i.is_provided]
        assert [(i.label, i.answer) for i in provided] == [("Medication list", "Aspirin 81 mg")]


def test_complete_referral_with_required_document_enters_review_queue(app, client_for, desk):
    client = client_for(desk.partner_a)
    data = form_data(
        desk,
        service_line=str(desk.cardio_id),
        **{
            f"item_{desk.meds_item_id}": "Aspirin 81 mg",
            f"item_{desk.echo_item_id}": (io.BytesIO(PDF), "echo.pdf"),
        },
    )
    response = client.post("/referrals/new", data=data, content_type="multipart/form-data")
    assert response.status_code == 302
    with app.app_context():
        referral = db.session.scalar(select(Referral))
        assert referral.status is Status.SUBMITTED
        assert referral.missing_items == []


def test_choosing_a_service_line_shows_its_criteria_and_required_items(client_for, desk):
    client = client_for(desk.partner_a)
    response = client.get(
        f"/referrals/new/requirements?service_line={desk.cardio_id}", headers={"HX-Request": "true"}
    )
    html = response.get_data(as_text=True)
    assert "Cardiac event in the last 12 months" in html
    assert "Echocardiogram report" in html and 'type="file"' in html
    assert "<html" not in html  # a fragment, not a page


def test_intake_enters_a_phoned_in_referral_for_a_partner(app, client_for, desk):
    client = client_for(desk.intake)
    data = form_data(desk, partner=str(desk.partner_b_id), source_channel="fax")
    assert client.post("/referrals/new", data=data).status_code == 302
    with app.app_context():
        referral = db.session.scalar(select(Referral))
        assert referral.partner_id == desk.partner_b_id
        assert referral.source_channel is Channel.FAX


@pytest.mark.parametrize("email", ["clinical@desk.example", "success@desk.example"])
def test_staff_who_do_not_take_referrals_cannot_open_the_form(client_for, desk, email):
    assert client_for(email).get("/referrals/new").status_code == 403
