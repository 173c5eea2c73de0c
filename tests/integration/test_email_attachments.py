"""A visit's calendar file travels with its email through the outbox."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from icalendar import Calendar

from portal.extensions import db
from portal.models import MessageChannel, OutboxMessage
from portal.notifications.backends import backend_for
from portal.notifications.delivery import deliver_due_messages
from portal.notifications.outbox import queue_email
from portal.patients.calendar import CALENDAR_CONTENT_TYPE, visit_calendar

VISIT_AT = datetime(2026, 12, 1, 19, 30, tzinfo=UTC)


def a_visit_calendar() -> bytes:
    return visit_calendar(
        uid="visit-7@portal.example",
        starts_at=VISIT_AT,
        minutes=30,
        zone=ZoneInfo("America/New_York"),
        summary="Video visit with Northwind Telehealth",
        description="Join from the link in your email.",
        organizer_name="Northwind Telehealth",
        organizer_email="referrals@example.org",
    )


def queue_confirmation(app, attachment: tuple[str, bytes] | None) -> int:
    with app.app_context():
        message = queue_email(
            recipient="patient@example.net",
            template="visit_booked",
            attachment=attachment,
            mode="video",
            practice="Northwind Telehealth",
            phone="+12025550100",
            appointment_at=VISIT_AT,
        )
        db.session.commit()
        return message.id


def test_the_calendar_file_arrives_as_a_text_calendar_attachment(app, smtp_sink):
    ics = a_visit_calendar()
    message_id = queue_confirmation(app, ("visit.ics", ics))
    with app.app_context():
        stored = db.session.get(OutboxMessage, message_id)
        assert stored.attachment_name == "visit.ics"
        assert stored.attachment_body.encode() == ics  # CRLF lines kept as written
        assert deliver_due_messages().sent == 1

    ((recipients, email),) = smtp_sink.messages
    assert recipients == ["patient@example.net"]
    assert "Northwind Telehealth" in email.get_body(("plain",)).get_content()
    (part,) = email.iter_attachments()
    assert part.get_content_type() == "text/calendar"
    assert part.get_filename() == "visit.ics"
    assert part.get_param("method") == "PUBLISH"
    assert part.get_content_charset() == "utf-8"
    assert part.get_content().encode() == ics  # exactly as stored, CRLFs and all

    calendar = Calendar.from_ical(part.get_content())
    assert [timezone.tz_name for timezone in calendar.timezones] == ["America/New_York"]
    (event,) = calendar.events
    assert getattr(event.start.tzinfo, "key", None) == "America/New_York"
    assert (event.start.hour, event.start.minute) == (14, 30)
    assert event.start == VISIT_AT


def test_a_message_without_an_attachment_stays_plain_text(app, smtp_sink):
    queue_confirmation(app, None)
    with app.app_context():
        assert deliver_due_messages().sent == 1
    ((_, email),) = smtp_sink.messages
    assert not email.is_multipart() and email.get_content_type() == "text/plain"


def test_the_recording_backend_keeps_the_attachment(app):
    ics = a_visit_calendar()
    queue_confirmation(app, ("visit.ics", ics))
    with app.app_context():
        assert deliver_due_messages().sent == 1
        backend = backend_for(MessageChannel.EMAIL)
        assert backend.attachments == [("patient@example.net", "visit.ics", ics.decode())]
        (sent,) = backend.sent
        assert sent[0] == "patient@example.net"


def test_the_development_outbox_shows_and_serves_the_attachment(app, client_for, desk):
    ics = a_visit_calendar()
    message_id = queue_confirmation(app, ("visit.ics", ics))
    staff = client_for(desk.intake)
    page = staff.get("/dev/outbox").get_data(as_text=True)
    link = f"/dev/outbox/{message_id}/attachment"
    assert "visit.ics" in page and link in page

    response = staff.get(link)
    assert response.status_code == 200
    assert response.mimetype == "text/calendar"
    assert response.mimetype_params == {"charset": "utf-8", "method": "PUBLISH"}
    assert response.headers["Content-Disposition"] == "attachment; filename=visit.ics"
    assert response.get_data() == ics
    # The route's content type says what the portal's constant says.
    assert sorted(CALENDAR_CONTENT_TYPE.replace(" ", "").split(";")) == sorted(
        response.headers["Content-Type"].replace(" ", "").split(";")
    )


def test_the_attachment_route_is_for_staff_and_for_messages_that_have_one(
    app, client, client_for, desk
):
    with_attachment = queue_confirmation(app, ("visit.ics", a_visit_calendar()))
    without = queue_confirmation(app, None)
    assert client.get(f"/dev/outbox/{with_attachment}/attachment").status_code == 302
    partner = client_for(desk.partner_a)
    assert partner.get(f"/dev/outbox/{with_attachment}/attachment").status_code == 404
    staff = client_for(desk.intake)
    assert staff.get(f"/dev/outbox/{without}/attachment").status_code == 404
    assert staff.get("/dev/outbox/999999/attachment").status_code == 404
