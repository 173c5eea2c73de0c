"""Reminder series followed end to end with a controlled clock."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, update

from portal.clock import frozen_at
from portal.extensions import db
from portal.models import (
    AppointmentMode,
    ContactMethod,
    InfoRequest,
    MessageChannel,
    MessageStatus,
    OutboxMessage,
    PatientAnswer,
    PatientLink,
    Referral,
    ReferralEvent,
    Status,
)
from portal.notifications.backends import backend_for
from portal.notifications.delivery import deliver_due_messages
from portal.patients.services import (
    PatientChoice,
    Slot,
    record_patient_answer,
    send_next_step_link,
)
from portal.patients.tasks import remind_appointments, remind_patients
from portal.referrals import services
from portal.referrals.documents import Upload
from portal.referrals.needs_info import InfoAnswer, answer_information, open_items
from portal.referrals.tasks import chase_incomplete_referrals
from tests.fixtures.desk import PDF, make_referral, user

NY = ZoneInfo("America/New_York")
MONDAY_10 = datetime(2026, 11, 23, 10, tzinfo=NY)


def at(days=0, hours=0, minutes=0) -> datetime:
    return MONDAY_10 + timedelta(days=days, hours=hours, minutes=minutes)


def subjects_to(recipient: str) -> list[str]:
    return list(
        db.session.scalars(
            select(OutboxMessage.subject)
            .where(OutboxMessage.recipient == recipient)
            .order_by(OutboxMessage.id)
        )
    )


def test_partner_reminders_then_escalation_for_an_incomplete_referral(app, desk):
    with app.app_context():
        with frozen_at(at()):
            reference = make_referral(desk, Status.NEEDS_INFO)
        partner_inbox = "contact@alpha.example"
        runs = [
            (at(hours=3, minutes=59), 0),  # before 4 business hours
            (at(hours=4, minutes=1), 1),  # 1st reminder: Monday 14:00
            (at(hours=4, minutes=2), 0),  # running again sends nothing twice
            (at(days=1, minutes=1), 1),  # 2nd: one business day, Tuesday 10:00
            (at(days=2), 0),
            (at(days=3, minutes=1), 1),  # 3rd: three business days, Thursday 10:00
            (at(days=4, minutes=1), 1),  # escalation: four business days, Friday 10:00
            (at(days=9), 0),  # and nothing after that
        ]
        for moment, handled in runs:
            with frozen_at(moment):
                assert chase_incomplete_referrals() == handled, moment
        reminders = [s for s in subjects_to(partner_inbox) if s.startswith("Reminder")]
        assert reminders == [f"Reminder: referral {reference} needs information"] * 3
        assert subjects_to(app.config["PARTNER_SUCCESS_EMAIL"]) == [
            f"Needs-info escalation: referral {reference} (Alpha Primary Care)"
        ]
        request = db.session.scalar(select(InfoRequest))
        assert request.reminders_sent == 3 and request.escalated_at is not None
        kinds = db.session.scalars(select(ReferralEvent.kind)).all()
        assert kinds.count("needs_info_reminder") == 3 and "needs_info_escalated" in kinds


def test_a_process_that_was_down_sends_one_reminder_not_all_the_missed_ones(app, desk):
    with app.app_context():
        with frozen_at(at()):
            make_referral(desk, Status.NEEDS_INFO)
        with frozen_at(at(days=2, hours=2)):  # Wednesday noon: two points were missed
            assert chase_incomplete_referrals() == 1
            assert chase_incomplete_referrals() == 0
        request = db.session.scalar(select(InfoRequest))
        assert request.reminders_sent == 1
        assert request.next_reminder_at == at(days=3)  # the next one still ahead


def test_an_answered_request_stops_the_reminders(app, desk, client_for):
    with app.app_context():
        with frozen_at(at()):
            reference = make_referral(desk, Status.NEEDS_INFO)
            referral = db.session.scalar(select(Referral).filter_by(reference=reference))
            services.resume_review(referral, user(desk.intake), expected_version=None)
            db.session.commit()
        with frozen_at(at(days=5)):
            # Resuming review closed the request there and then: nothing left to chase.
            assert chase_incomplete_referrals() == 0
        assert not [s for s in subjects_to("contact@alpha.example") if s.startswith("Reminder")]


def test_a_patient_reminder_overdue_at_night_waits_for_the_practice_to_open(app, desk):
    """The jobs process was down from Monday evening and is back at 3:00 on Wednesday:
    the overdue reminder goes out at opening time, not as a text at 3 a.m."""
    with app.app_context():
        send_a_link_offering(desk, at(days=7))
        sent_at_first = db.session.scalar(select(func.count(OutboxMessage.id)))
        with frozen_at(at(days=1, hours=17)):  # Wednesday 3:00
            remind_patients()
            assert db.session.scalar(select(func.count(OutboxMessage.id))) == sent_at_first
            link = db.session.scalar(select(PatientLink))
            assert link.next_reminder_at == at(days=1, hours=23)  # Wednesday 9:00
        with frozen_at(at(days=1, hours=23, minutes=1)):
            assert remind_patients() == 1
            assert db.session.scalar(select(func.count(OutboxMessage.id))) == sent_at_first + 1


def test_a_patient_reminder_due_at_closing_time_goes_out_in_the_minutes_after(app, desk):
    """A link sent at night has its first reminder at 17:00 the next day, the end of a
    business day's worth of open time: the job running at 17:01 still sends it."""
    night = at(hours=-12)  # Sunday 22:00
    with app.app_context():
        send_a_link_offering(desk, at(days=7), sent_at=night)
        link = db.session.scalar(select(PatientLink))
        assert link.next_reminder_at == at(hours=7)  # Monday 17:00
        with frozen_at(at(hours=7, minutes=1)):
            assert remind_patients() == 1
            assert db.session.scalar(select(PatientLink)).reminders_sent == 1


def test_patient_reminders_then_a_flag_to_phone(app, desk):
    with app.app_context():
        reference = send_a_link_offering(desk, at(days=7))
        for moment, handled in [
            (at(hours=7), 0),
            (at(days=1, minutes=1), 1),  # after one business day
            (at(days=1, minutes=2), 0),
            (at(days=2, minutes=1), 1),  # after two
            (at(days=3, minutes=1), 1),  # after three: flag for a phone call
            (at(days=4), 0),
        ]:
            with frozen_at(moment):
                assert remind_patients() == handled, moment
        texts = db.session.scalars(
            select(OutboxMessage.body).where(OutboxMessage.recipient == "+12025550143")
        ).all()
        assert len(texts) == 3  # the link and two reminders
        assert all("/p/" in text for text in texts)
        link = db.session.scalar(select(PatientLink))
        assert link.reminders_sent == 2 and link.phone_outreach_flagged_at is not None
        assert subjects_to(app.config["INTAKE_TEAM_EMAIL"]) == [
            f"Referral {reference}: The patient has not answered their link after 2 reminders: "
            "please call them"
        ]


def send_a_link_offering(desk, starts_at: datetime, *, sent_at: datetime | None = None) -> str:
    """A link by text offering one video visit at `starts_at`, sent at `sent_at` (or
    `at()`)."""
    with frozen_at(sent_at or at()):
        reference = make_referral(desk, Status.ACCEPTED)
        referral = db.session.scalar(select(Referral).filter_by(reference=reference))
        send_next_step_link(
            referral,
            user(desk.intake),
            expected_version=None,
            via=ContactMethod.SMS,
            slots=[Slot(starts_at, AppointmentMode.VIDEO)],
        )
        db.session.commit()
    return reference


def assert_flagged_for_a_call_with_no_reminder(app, reference: str, at_moment: datetime):
    texts = db.session.scalars(
        select(OutboxMessage.body).where(OutboxMessage.recipient == "+12025550143")
    ).all()
    assert len(texts) == 1  # the link, and no reminder to pick a time
    link = db.session.scalar(select(PatientLink))
    assert link.reminders_sent == 0 and link.phone_outreach_flagged_at == at_moment
    assert link.next_reminder_at is None
    assert subjects_to(app.config["INTAKE_TEAM_EMAIL"]) == [
        f"Referral {reference}: Every time offered on the patient's link has passed "
        "unanswered: please call them"
    ]


def test_once_every_offered_time_has_passed_intake_is_told_to_call_there_and_then(app, desk):
    with app.app_context():
        reference = send_a_link_offering(desk, at(hours=2))  # before the first reminder
        link = db.session.scalar(select(PatientLink))
        assert link.next_reminder_at == at(hours=2)  # not a business day later
        for moment, handled in [
            (at(hours=1, minutes=59), 0),
            (at(hours=2), 1),  # the only time offered has just passed
            (at(days=1, minutes=1), 0),
            (at(days=4), 0),
        ]:
            with frozen_at(moment):
                assert remind_patients() == handled, moment
        assert_flagged_for_a_call_with_no_reminder(app, reference, at(hours=2))


def test_a_reminder_due_after_every_offered_time_has_passed_is_not_sent(app, desk):
    with app.app_context():
        reference = send_a_link_offering(desk, at(hours=2))
        # As a link sent before the reminders watched its times: due a business day on.
        db.session.execute(update(PatientLink).values(next_reminder_at=at(days=1)))
        db.session.commit()
        with frozen_at(at(days=1, minutes=1)):
            assert remind_patients() == 1
        assert_flagged_for_a_call_with_no_reminder(app, reference, at(days=1, minutes=1))


def test_the_day_before_a_visit_the_patient_gets_the_instructions(app, desk):
    with app.app_context():
        with frozen_at(at()):
            reference = make_referral(desk, Status.ACCEPTED)
            referral = db.session.scalar(select(Referral).filter_by(reference=reference))
            services.schedule(
                referral,
                user(desk.intake),
                expected_version=None,
                appointment_at=at(days=3),
                mode=AppointmentMode.PHONE,
            )
            db.session.commit()
        with frozen_at(at(days=1, hours=23)):
            assert remind_appointments() == 0
        with frozen_at(at(days=2, minutes=1)):
            assert remind_appointments() == 1
            assert remind_appointments() == 0
        # The patient prefers phone calls, so the reminder is a text to that phone, with
        # the day and the time in the practice's zone.
        (message,) = db.session.scalars(
            select(OutboxMessage).where(
                OutboxMessage.body.like("%phone visit is tomorrow, Thu, Nov 26 at 10:00 AM\n%")
            )
        ).all()
        assert message.channel.value == "sms" and message.recipient == "+12025550143"
        assert "medicine list" in message.body
        # Moving the visit re-arms the reminder.
        with frozen_at(at(days=2, hours=1)):
            services.schedule(
                referral,
                user(desk.intake),
                expected_version=None,
                appointment_at=at(days=5),
                mode=AppointmentMode.PHONE,
            )
            db.session.commit()
        with frozen_at(at(days=4, minutes=1)):
            assert remind_appointments() == 1


def test_email_patients_get_the_full_instructions_by_email(app, desk):
    with app.app_context():
        with frozen_at(at()):
            reference = make_referral(desk, Status.ACCEPTED, preferred_contact=ContactMethod.EMAIL)
            referral = db.session.scalar(select(Referral).filter_by(reference=reference))
            services.schedule(
                referral,
                user(desk.intake),
                expected_version=None,
                appointment_at=at(days=3),
                mode=AppointmentMode.VIDEO,
            )
            db.session.commit()
        with frozen_at(at(days=2, minutes=1)):
            assert remind_appointments() == 1
        (message,) = db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.subject.like("Your video visit%"))
        ).all()
        assert message.subject.endswith("is tomorrow, Thu, Nov 26 at 10:00 AM")
        assert message.recipient == "zephyrine.q@example.com"
        assert "15 minutes before" in message.body and "medicines" in message.body


def test_a_partner_reminder_held_up_in_the_outbox_is_not_sent_after_the_office_answered(
    app, desk, smtp_sink
):
    """The reminder is queued at 14:00 while the mail server is down; the office answers
    everything at 14:20; the server is back at 14:40. The office is not then told the
    referral still waits for information from them."""
    with app.app_context():
        with frozen_at(at()):
            reference = make_referral(desk, Status.NEEDS_INFO)
            deliver_due_messages()  # what the submission queued goes out
        sink_port, app.config["MAIL_PORT"] = app.config["MAIL_PORT"], 1
        with frozen_at(at(hours=4, minutes=1)):
            assert chase_incomplete_referrals() == 1
            deliver_due_messages()  # the server is down: the reminder waits
        with frozen_at(at(hours=4, minutes=20)):
            answer_everything(desk, reference)
        app.config["MAIL_PORT"] = sink_port
        with frozen_at(at(hours=4, minutes=40)):
            assert deliver_due_messages().cancelled == 1
        reminder = db.session.scalar(
            select(OutboxMessage).where(OutboxMessage.subject.like("Reminder%"))
        )
        assert reminder.status is MessageStatus.CANCELLED  # kept, never deleted
        assert "request was closed" in reminder.last_error
    received = [m["Subject"] for _to, m in smtp_sink.messages]
    assert not [s for s in received if s.startswith("Reminder")], received


def answer_everything(desk, reference: str) -> None:
    referral = db.session.scalar(select(Referral).filter_by(reference=reference))
    answers, documents = {}, {}
    for item in open_items(referral):
        if item.kind.value == "document":
            documents[item.id] = Upload("echo.pdf", "application/pdf", PDF)
        else:
            answers[item.id] = "Aspirin 81 mg"
    answer_information(
        referral,
        user(desk.partner_a),
        InfoAnswer(answers=answers, documents=documents),
        expected_version=None,
    )
    db.session.commit()
    assert referral.status is Status.SUBMITTED


@pytest.mark.parametrize("moved_on", ["booked", "withdrawn"])
def test_a_patient_reminder_held_up_in_the_outbox_is_not_sent_after_the_referral_moved_on(
    app, desk, client_for, moved_on
):
    """The "pick a time" reminder waits in the outbox (the provider slow, the jobs
    process behind) while the patient books through the link, or the referral is
    withdrawn: it is cancelled, not sent, and the admin sees why."""
    with app.app_context():
        reference = send_a_link_offering(desk, at(days=7))
        with frozen_at(at()):
            deliver_due_messages()
        with frozen_at(at(days=1, minutes=1)):
            assert remind_patients() == 1
        with frozen_at(at(days=1, minutes=5)):
            link = db.session.scalar(select(PatientLink))
            if moved_on == "booked":
                (slot,) = link.slots
                record_patient_answer(
                    link, PatientChoice(PatientAnswer.SLOT, ContactMethod.SMS, slot.id)
                )
            else:  # the referring office withdraws it
                referral = db.session.scalar(select(Referral).filter_by(reference=reference))
                services.withdraw(referral, user(desk.partner_a), expected_version=None)
            db.session.commit()
        texts = backend_for(MessageChannel.SMS).sent
        before = len(texts)
        with frozen_at(at(days=1, minutes=6)):
            report = deliver_due_messages()
        reminder = db.session.scalar(
            select(OutboxMessage).where(OutboxMessage.purpose == "patient_link_reminder")
        )
        assert report.cancelled == 1 and reminder.status is MessageStatus.CANCELLED
        assert reminder.body not in [body for _to, _subject, body in texts[before:]]
    page = client_for(desk.admin).get("/admin/outbox").get_data(as_text=True)
    assert "Cancelled before delivery" in page and reminder.last_error in page


def test_a_visit_reminder_for_a_visit_moved_meanwhile_is_not_sent(app, desk):
    with app.app_context():
        with frozen_at(at()):
            reference = make_referral(desk, Status.ACCEPTED)
            referral = db.session.scalar(select(Referral).filter_by(reference=reference))
            services.schedule(
                referral,
                user(desk.intake),
                expected_version=None,
                appointment_at=at(days=3),
                mode=AppointmentMode.PHONE,
            )
            db.session.commit()
            deliver_due_messages()
        with frozen_at(at(days=2, minutes=1)):
            assert remind_appointments() == 1  # names Thursday 10:00
        with frozen_at(at(days=2, hours=1)):
            services.schedule(
                referral,
                user(desk.intake),
                expected_version=None,
                appointment_at=at(days=5),
                mode=AppointmentMode.PHONE,
            )
            db.session.commit()
            assert deliver_due_messages().cancelled == 1  # the old time is not sent
        with frozen_at(at(days=4, minutes=1)):
            assert remind_appointments() == 1
            assert deliver_due_messages().sent == 1  # the new time is
