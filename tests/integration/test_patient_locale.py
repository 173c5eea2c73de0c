"""A US practice's patients: dates the US way, English or Spanish, a calendar file, and
a lockout that reaches a person."""

from __future__ import annotations

import re
from html import unescape

import pytest
from icalendar import Calendar
from sqlalchemy import select

from portal.clock import utcnow
from portal.extensions import db
from portal.models import (
    ContactMethod,
    OutboxMessage,
    PatientLanguage,
    PatientLink,
    Referral,
    Status,
)
from portal.patients.tasks import remind_patients
from tests.fixtures.desk import make_referral
from tests.integration.test_patient_links import DOB, load, send_link
from tests.integration.test_submission import form_data

WRONG_DOB = {"month": "5", "day": "3", "year": "1961"}  # the record: 3/14/1961


def _inputs(html: str) -> list[str]:
    return re.findall(r'<input[^>]*\bname="(month|day|year)"', html)


def _book(client, path: str, contact: str = "email") -> str:
    assert client.post(f"{path}/verify", data=DOB).status_code == 303
    choices = client.get(path).get_data(as_text=True)
    slot = re.search(r'value="(slot-\d+)"', choices).group(1)
    answered = client.post(f"{path}/answer", data={"choice": slot, "contact": contact})
    assert answered.status_code == 303
    return client.get(path).get_data(as_text=True)


@pytest.fixture
def spanish(app, desk):
    with app.app_context():
        return make_referral(desk, Status.ACCEPTED, patient_language=PatientLanguage.SPANISH)


@pytest.fixture
def accepted(app, desk):
    with app.app_context():
        return make_referral(desk, Status.ACCEPTED)


def test_the_date_of_birth_is_asked_month_day_year(app, client, client_for, desk, accepted):
    path = send_link(app, client_for(desk.intake), accepted)
    page = client.get(path).get_data(as_text=True)
    assert _inputs(page) == ["month", "day", "year"]
    assert "For example, 3 27 1961" in page
    for name in ("month", "day", "year"):
        field = re.search(rf'<input[^>]*name="{name}"[^>]*>', page).group(0)
        assert 'inputmode="numeric"' in field and f'autocomplete="bday-{name}"' in field
    # Typed the US way, 03/14/1961 opens it.
    assert (
        client.post(f"{path}/verify", data={"month": "03", "day": "14", "year": "1961"}).status_code
        == 303
    )


def test_a_day_typed_first_is_pointed_out_and_costs_no_try(app, client, client_for, desk, accepted):
    path = send_link(app, client_for(desk.intake), accepted)
    response = client.post(f"{path}/verify", data={"month": "14", "day": "3", "year": "1961"})
    assert response.status_code == 422
    text = unescape(response.get_data(as_text=True))
    assert "The month must be a number from 1 to 12. Did you put the day first?" in text
    with app.app_context():
        assert db.session.scalar(select(PatientLink.failed_attempts)) == 0


def test_a_wrong_date_says_what_to_check_but_never_the_real_date(
    app, client, client_for, desk, accepted
):
    path = send_link(app, client_for(desk.intake), accepted)
    response = client.post(f"{path}/verify", data=WRONG_DOB)
    assert response.status_code == 422
    summary = re.search(
        r'<div class="error-summary".*?</div>', response.get_data(as_text=True), re.S
    )
    text = unescape(summary.group(0))
    assert "does not match our records" in text
    assert "Check the order: month, day, year." in text  # 5/3 could be read either way
    assert "You have 4 tries left." in text
    assert "14" not in text and "March" not in text  # nothing of the record's date
    # A date that cannot be read either way gets no reminder of the order.
    unambiguous = client.post(f"{path}/verify", data={"month": "3", "day": "20", "year": "1961"})
    assert "Check the order" not in unambiguous.get_data(as_text=True)


def test_a_spanish_speaking_patients_pages_start_in_spanish_and_switch(
    app, client, client_for, desk, spanish
):
    path = send_link(app, client_for(desk.intake), spanish)
    page = client.get(path).get_data(as_text=True)
    assert '<html lang="es">' in page
    assert "Confirme que es usted" in page and "Por ejemplo, 3 27 1961" in page
    assert re.findall(r">(Mes|Día|Año)</label>", page) == ["Mes", "Día", "Año"]
    assert f'href="{path}?lang=en"' in page  # the switch, a plain link

    english = client.get(f"{path}?lang=en").get_data(as_text=True)
    assert '<html lang="en">' in english and "Confirm it is you" in english
    # The choice stays for the next pages, in this browser only.
    wrong = client.post(f"{path}/verify", data=WRONG_DOB).get_data(as_text=True)
    assert "does not match our records" in wrong
    assert "Confirme que es usted" in app.test_client().get(path).get_data(as_text=True)


def test_a_spanish_speaking_patient_books_in_spanish_and_gets_a_calendar_file(
    app, client, client_for, desk, spanish
):
    path = send_link(app, client_for(desk.intake), spanish, via="email")
    with app.app_context():
        link_message = db.session.scalars(
            select(OutboxMessage).order_by(OutboxMessage.id.desc())
        ).first()
    assert link_message.subject == "Un mensaje de Northwind Telehealth"
    assert "Abra este enlace seguro" in link_message.body

    choices = client.get(path)
    assert client.post(f"{path}/verify", data=DOB).status_code == 303
    choices = client.get(path).get_data(as_text=True)
    assert "Elija su próximo paso" in choices and "cita por video" in choices
    assert re.search(r"(lun|mar|mié|jue|vie|sáb|dom), \d+ de \w+ de 2026", choices)
    done = _book(client, path)
    assert "Ya tiene su cita" in done and "Agregar a mi calendario" in done
    assert 'href="tel:+12025550100"' in done

    ics = client.get(f"{path}/visit.ics")
    assert ics.status_code == 200 and ics.mimetype == "text/calendar"
    (event,) = Calendar.from_ical(ics.data).walk("VEVENT")
    referral = load(app, spanish)
    assert event.decoded("DTSTART") == referral.appointment_at
    assert str(event.decoded("DTSTART").tzinfo) == "America/New_York"
    assert str(event["SUMMARY"]) == "Cita por video con Northwind Telehealth"
    assert "Zephyrine" not in ics.get_data(as_text=True)

    with app.app_context():
        confirmation = db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.attachment_name == "visit.ics")
        ).one()
    assert confirmation.recipient == "zephyrine.q@example.com"
    assert confirmation.subject == "Tiene una cita con Northwind Telehealth"
    assert "Cita por video" in confirmation.attachment_body
    # Someone without the verified session gets no calendar file.
    assert app.test_client().get(f"{path}/visit.ics").status_code in (303, 410)


def test_the_booking_confirmation_goes_by_text_when_the_patient_asks_for_texts(
    app, client, client_for, desk, accepted
):
    path = send_link(app, client_for(desk.intake), accepted, via="sms")
    _book(client, path, contact="sms")
    with app.app_context():
        text = db.session.scalars(
            select(OutboxMessage.body).where(OutboxMessage.body.like("%you are booked%"))
        ).one()
        appointment_at = db.session.scalar(select(Referral.appointment_at))
    assert "video visit" in text and " at 10:30 AM" in text and "(202) 555-0100" in text
    assert appointment_at > utcnow()


def test_a_locked_link_reaches_intake_and_is_reissued_from_the_queue(
    app, client, client_for, desk, accepted
):
    path = send_link(app, client_for(desk.intake), accepted, via="sms")
    for _ in range(5):
        client.post(f"{path}/verify", data=WRONG_DOB)
    locked = client.get(path).get_data(as_text=True)
    assert "This link is locked" in locked and "We have told our team" in locked
    with app.app_context():
        referral = db.session.scalar(select(Referral))
        assert referral.patient_locked_out_at is not None
        subjects = db.session.scalars(select(OutboxMessage.subject)).all()
        link = db.session.scalar(select(PatientLink))
        assert link.next_reminder_at is None
    assert (
        f"Referral {accepted}: The patient is locked out of their link: "
        "please call them or reissue it"
    ) in subjects
    # The reminder job has nothing to send on a locked link: intake has it now.
    with app.app_context():
        assert remind_patients() == 0

    intake = client_for(desk.intake)
    queue = intake.get("/queue").get_data(as_text=True)
    row = re.search(rf"<tr[^>]*>(?:(?!</tr>).)*{accepted}(?:(?!</tr>).)*</tr>", queue, re.S).group(
        0
    )
    assert "Patient locked out" in row and "Reissue link" in row
    detail = intake.get(f"/referrals/{accepted}").get_data(as_text=True)
    assert "Reissue the patient&#39;s link" in detail or "Reissue the patient's link" in detail

    version = load(app, accepted).version
    reissued = intake.post(
        f"/referrals/{accepted}/actions/reissue_patient_link", data={"version": version}
    )
    assert reissued.status_code == 302
    with app.app_context():
        referral = db.session.scalar(select(Referral))
        assert referral.patient_locked_out_at is None
        old, new = db.session.scalars(select(PatientLink).order_by(PatientLink.id)).all()
        assert old.revoked_at is not None and new.sent_via is ContactMethod.SMS
        assert [s.starts_at for s in new.slots] == [s.starts_at for s in old.slots]
        assert new.next_reminder_at is not None
        texts = db.session.scalars(
            select(OutboxMessage.body).where(OutboxMessage.recipient == "+12025550143")
        ).all()
    assert len(texts) == 2  # the first link and the reissued one
    assert "Patient locked out" not in intake.get("/queue").get_data(as_text=True)
    new_path = re.search(r"/p/\S+", texts[-1]).group(0)
    assert client.post(f"{new_path}/verify", data=DOB).status_code == 303


def test_a_link_is_reissued_only_for_a_locked_out_patient(app, client_for, desk, accepted):
    intake = client_for(desk.intake)
    send_link(app, intake, accepted)
    detail = intake.get(f"/referrals/{accepted}").get_data(as_text=True)
    assert "reissue_patient_link" not in detail
    refused = intake.post(
        f"/referrals/{accepted}/actions/reissue_patient_link",
        data={"version": load(app, accepted).version},
    )
    assert refused.status_code == 409
    assert "not locked out" in refused.get_data(as_text=True)


def test_the_referral_form_records_the_patients_language(app, client_for, desk):
    partner = client_for(desk.partner_a)
    page = partner.get("/referrals/new", follow_redirects=True).get_data(as_text=True)
    assert "Which language does the patient read best?" in page
    assert "Spanish (Español)" in page
    assert re.search(r'<input[^>]*checked[^>]*value="en"|<input[^>]*value="en"[^>]*checked', page)
    response = partner.post("/referrals/new", data=form_data(desk, patient_language="es"))
    assert response.status_code == 302
    with app.app_context():
        assert db.session.scalar(select(Referral.patient_language)) is PatientLanguage.SPANISH
    refused = partner.post(
        "/referrals/new", data=form_data(desk, patient_language="fr", submission_token="t" * 30)
    )
    assert refused.status_code == 422


def test_a_patient_who_answers_in_spanish_is_written_to_in_spanish(
    app, client, client_for, desk, accepted
):
    path = send_link(app, client_for(desk.intake), accepted, via="email")
    client.get(f"{path}?lang=es")
    done = _book(client, path)
    assert "Ya tiene su cita" in done
    with app.app_context():
        referral = db.session.scalar(select(Referral))
        assert referral.patient_language is PatientLanguage.SPANISH
        confirmation = db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.attachment_name == "visit.ics")
        ).one()
    assert confirmation.subject == "Tiene una cita con Northwind Telehealth"
    staff_page = unescape(
        client_for(desk.intake).get(f"/referrals/{accepted}").get_data(as_text=True)
    )
    assert "prefers email, reads Spanish (Español)" in staff_page


def test_staff_messages_stay_in_the_practice_locale_whatever_page_caused_them(app, desk, spanish):
    from jinja2 import ChoiceLoader, DictLoader

    from portal.i18n import use_language
    from portal.notifications.outbox import queue_email
    from portal.notifications.referrals import message_patient

    probe = {
        "emails/probe.subject.txt": "{{ _('Date of birth') }}",
        "emails/probe.txt": "{{ _('Continue') }}",
    }
    app.jinja_env.loader = ChoiceLoader([DictLoader(probe), app.jinja_env.loader])
    with app.test_request_context("/p/token"):
        use_language(PatientLanguage.SPANISH)  # a Spanish patient's page made the change
        referral = db.session.scalar(select(Referral))
        staff = queue_email(recipient="intake@example.org", template="probe")
        message_patient(referral, ContactMethod.EMAIL, "probe")
        patient = db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.recipient == referral.patient_email)
        ).one()
        assert (staff.subject, staff.body) == ("Date of birth", "Continue")
        assert (patient.subject, patient.body) == ("Fecha de nacimiento", "Continuar")
        db.session.rollback()


def test_a_link_cannot_be_reissued_when_there_is_none_and_partners_never_can(
    app, client_for, desk, accepted
):
    data = {"version": load(app, accepted).version}
    intake = client_for(desk.intake).post(
        f"/referrals/{accepted}/actions/reissue_patient_link", data=data
    )
    assert intake.status_code == 409 and "not locked out" in intake.get_data(as_text=True)
    partner = client_for(desk.partner_a).post(
        f"/referrals/{accepted}/actions/reissue_patient_link", data=data
    )
    assert partner.status_code == 403


def test_a_language_switched_on_one_link_stays_with_that_link(
    app, client, client_for, desk, spanish
):
    with app.app_context():
        other = make_referral(desk, Status.ACCEPTED, patient_language=PatientLanguage.SPANISH)
    first = send_link(app, client_for(desk.intake), spanish)
    second = send_link(app, client_for(desk.intake), other)
    assert '<html lang="en">' in client.get(f"{first}?lang=en").get_data(as_text=True)
    # The same phone opens another patient's link: theirs is still in Spanish.
    assert '<html lang="es">' in client.get(second).get_data(as_text=True)
    _book(client, second)
    with app.app_context():
        assert (
            db.session.scalar(select(Referral.patient_language).filter_by(reference=other))
            is PatientLanguage.SPANISH
        )


def test_a_spanish_booking_reads_in_english_on_the_staff_timeline(
    app, client, client_for, desk, spanish
):
    path = send_link(app, client_for(desk.intake), spanish)
    _book(client, path)
    page = unescape(client_for(desk.partner_a).get(f"/referrals/{spanish}").get_data(as_text=True))
    booked = re.search(r"Patient confirmed next step: booked ([^(]+)\(", page).group(1)
    assert re.fullmatch(
        r"(Mon|Tue|Wed|Thu|Fri|Sat|Sun), \w{3} \d+, \d{4}, \d+:\d\d [AP]M E[SD]T ", booked
    )


def test_a_spanish_speaking_patients_expired_form_says_so_in_spanish(
    app, client, client_for, desk, spanish
):
    path = send_link(app, client_for(desk.intake), spanish)
    assert '<html lang="es">' in client.get(path).get_data(as_text=True)
    # The form's CSRF seed is gone (cookie cleared, link reopened in another browser).
    refused = client.post(f"{path}/verify", data=DOB, without_csrf=True)
    html = refused.get_data(as_text=True)
    assert refused.status_code == 400
    assert '<html lang="es">' in html and "Lo sentimos, inténtelo otra vez" in html


def test_the_language_a_patient_switched_to_holds_on_their_error_pages(
    app, client, client_for, desk, accepted
):
    path = send_link(app, client_for(desk.intake), accepted)
    assert '<html lang="es">' in client.get(f"{path}?lang=es").get_data(as_text=True)
    refused = client.post(f"{path}/verify", data=DOB, without_csrf=True)
    assert refused.status_code == 400
    assert '<html lang="es">' in refused.get_data(as_text=True)
    wrong_method = client.get(f"{path}/answer")
    assert wrong_method.status_code == 405
    assert '<html lang="es">' in wrong_method.get_data(as_text=True)


def test_a_spanish_speaking_patients_page_that_fails_says_so_in_spanish(
    app, client, client_for, desk, spanish, monkeypatch
):
    from portal.patients import routes as patient_routes

    path = send_link(app, client_for(desk.intake), spanish)

    def fails(*args, **kwargs):
        raise RuntimeError("the disk is on fire")

    # It fails before the page has chosen the patient's language.
    monkeypatch.setattr(patient_routes, "resolve", fails)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    failed = client.get(path)
    html = failed.get_data(as_text=True)
    assert failed.status_code == 500
    assert '<html lang="es">' in html and "Lo sentimos, algo falló de nuestro lado" in html
