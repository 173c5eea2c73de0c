"""A Spanish-speaking patient on a 360 px phone with JavaScript off opens a reminder,
verifies their birth date typed the US way, picks a slot, adds it to a calendar and
finds the practice's number to tap; a patient who locks their link shows up in
intake's queue, where intake reissues it."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from icalendar import Calendar
from playwright.sync_api import expect
from sqlalchemy import select

from portal.clock import frozen_at, utcnow
from portal.extensions import db
from portal.models import (
    AppointmentMode,
    ContactMethod,
    OutboxMessage,
    PatientLanguage,
    PatientLink,
    Referral,
    Status,
)
from portal.patients.services import Slot, reminder_points, send_next_step_link
from portal.patients.tasks import remind_patients
from portal.sla.clocks import load_calendar
from tests.fixtures.desk import make_referral, user

pytestmark = pytest.mark.e2e

PHONE = {"viewport": {"width": 360, "height": 740}, "is_mobile": True, "has_touch": True}


def _send_link(app, desk, reference: str, slot_at) -> None:
    with app.app_context():
        referral = db.session.scalar(select(Referral).filter_by(reference=reference))
        send_next_step_link(
            referral,
            user(desk.intake),
            expected_version=None,
            via=ContactMethod.SMS,
            slots=[Slot(slot_at, AppointmentMode.VIDEO)],
        )
        db.session.commit()


def _latest_text_link(app) -> str:
    with app.app_context():
        body = db.session.scalars(
            select(OutboxMessage.body).order_by(OutboxMessage.id.desc())
        ).first()
    return re.search(r"https?://\S+/p/\S+", body).group(0)


def test_a_spanish_speaking_patient_books_from_a_reminder_on_a_phone(
    app, desk, browser, live_server
):
    with app.app_context():
        reference = make_referral(
            desk,
            Status.ACCEPTED,
            patient_language=PatientLanguage.SPANISH,
            preferred_contact=ContactMethod.SMS,
        )
    slot_at = (utcnow() + timedelta(days=6)).replace(minute=30, second=0, microsecond=0)
    _send_link(app, desk, reference, slot_at)
    # The patient does not answer; the reminder job texts them again, in Spanish.
    with app.app_context():
        link = db.session.scalar(select(PatientLink))
        first_reminder = reminder_points(link, load_calendar())[0][0]
        with frozen_at(first_reminder + timedelta(minutes=1)):
            assert remind_patients() == 1
        reminder = db.session.scalars(
            select(OutboxMessage).order_by(OutboxMessage.id.desc())
        ).first()
    assert reminder.channel.value == "sms" and "le recordamos elegir una hora" in reminder.body
    assert len(reminder.body) <= 160

    context = browser.new_context(**PHONE, java_script_enabled=False, accept_downloads=True)
    patient = context.new_page()
    patient.goto(_latest_text_link(app))
    expect(patient.get_by_role("heading", name="Confirme que es usted")).to_be_visible()
    expect(patient.locator("html")).to_have_attribute("lang", "es")
    expect(patient.get_by_text("Por ejemplo, 3 27 1961")).to_be_visible()
    # Typed the US way: month, day, year, in the order the boxes come.
    boxes = patient.locator(".date-input input")
    expect(boxes).to_have_count(3)
    for box, value in zip(boxes.all(), ("03", "14", "1961"), strict=True):
        box.fill(value)
    assert [box.get_attribute("name") for box in boxes.all()] == ["month", "day", "year"]
    patient.get_by_role("button", name="Continuar").click()

    expect(patient.get_by_role("heading", name="Elija su próximo paso")).to_be_visible()
    patient.locator("input[name=choice]").first.check()
    patient.get_by_label("Mensaje de texto").check()
    patient.get_by_role("button", name="Enviar mi respuesta").click()
    expect(patient.get_by_role("heading", name="Ya tiene su cita")).to_be_visible()

    with patient.expect_download() as download_info:
        patient.get_by_role("link", name="Agregar a mi calendario").click()
    download = download_info.value
    assert download.suggested_filename == "visit.ics"
    with open(download.path(), "rb") as file:
        (event,) = Calendar.from_ical(file.read()).walk("VEVENT")
    start = event.decoded("DTSTART")
    assert str(start.tzinfo) == "America/New_York"
    assert start == slot_at  # the same instant, written in the practice's zone
    assert str(event["SUMMARY"]) == "Cita por video con Northwind Telehealth"

    call = patient.locator("footer a[href^='tel:']")
    expect(call).to_have_attribute("href", "tel:+12025550100")
    expect(call).to_have_text("(202) 555-0100")
    box = call.bounding_box()
    assert box["height"] >= 44, box
    call.tap(trial=True)  # visible, enabled and not covered: a thumb can tap it
    context.close()

    with app.app_context():
        referral = db.session.scalar(select(Referral))
        assert referral.status is Status.SCHEDULED and referral.appointment_at == slot_at
        confirmation = db.session.scalars(
            select(OutboxMessage.body)
            .where(OutboxMessage.recipient == referral.patient_phone)
            .order_by(OutboxMessage.id.desc())
        ).first()
    assert "tiene cita por video" in confirmation and "Para cambiarla llame al" in confirmation


def test_a_locked_out_patient_shows_up_in_intakes_queue_and_gets_a_new_link(
    app, desk, browser, live_server, signed_in_page
):
    with app.app_context():
        reference = make_referral(desk, Status.ACCEPTED, preferred_contact=ContactMethod.SMS)
    _send_link(app, desk, reference, utcnow() + timedelta(days=5))
    context = browser.new_context(**PHONE, java_script_enabled=False)
    patient = context.new_page()
    patient.goto(_latest_text_link(app))
    for _ in range(5):
        patient.get_by_label("Month").fill("5")
        patient.get_by_label("Day").fill("3")
        patient.get_by_label("Year").fill("1961")
        patient.get_by_role("button", name="Continue").click()
    expect(patient.get_by_role("heading", name="This link is locked")).to_be_visible()
    context.close()

    intake = signed_in_page(desk.intake)
    intake.goto(f"{live_server}/queue")
    row = intake.locator("tr", has_text=reference)
    expect(row.get_by_text("Patient locked out")).to_be_visible()
    row.get_by_role("button", name="Reissue link").click()
    expect(intake.locator(".notice-success")).to_have_text(
        "A new link went to the patient, with the times still ahead."
    )
    intake.goto(f"{live_server}/queue")
    expect(
        intake.locator("tr", has_text=reference).get_by_text("Patient locked out")
    ).to_have_count(0)
