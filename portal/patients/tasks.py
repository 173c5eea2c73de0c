"""Periodic work for patients: next-step reminders, the phone flag, visit reminders."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import and_

from portal.claiming import process_due
from portal.clock import utcnow
from portal.extensions import db
from portal.formatting import count_reminders
from portal.models import PatientLink, Referral, Status
from portal.notifications.outbox import portal_url
from portal.notifications.referrals import message_patient, notify_intake
from portal.patients.links import problem_with, sign
from portal.patients.services import next_check_at, reminder_points
from portal.referrals.workflow import record_event
from portal.sla.calendar import BusinessCalendar
from portal.sla.clocks import load_calendar

log = logging.getLogger(__name__)

# A reminder falls due in business time, so at the latest at closing time; the job runs
# every minute. Within this long after closing it still goes out; later, it waits.
JUST_CLOSED = timedelta(minutes=30)


def remind_patients(limit: int = 200) -> int:
    """Remind patients who have not answered their link; then flag them for a call."""
    now = utcnow()
    calendar = load_calendar(checked=True)
    handled = process_due(
        PatientLink,
        PatientLink.next_reminder_at <= now,
        PatientLink.next_reminder_at,
        lambda link: _remind(link, now, calendar),
        limit,
    )
    if handled:
        log.info("patient reminders: %d links handled", handled)
    return handled


def _remind(link: PatientLink, now: datetime, calendar: BusinessCalendar) -> None:
    referral = db.session.get(Referral, link.referral_id)
    if problem_with(link) is not None or referral.status is not Status.ACCEPTED:
        link.next_reminder_at = None
        return
    if link.offered_times_passed(now):
        # Reminding them to pick a time would send them to a page with none to pick.
        _flag_for_a_call(
            link, referral, now, "Every time offered on the patient's link has passed unanswered"
        )
        return
    reminders, flag_at = reminder_points(link, calendar)
    if now >= flag_at:
        reminded = count_reminders(link.reminders_sent)
        _flag_for_a_call(
            link, referral, now, f"The patient has not answered their link {reminded}"
        )
        return
    if not (calendar.is_open(now) or calendar.is_open(now - JUST_CLOSED)):
        # Overdue while the practice is closed (the jobs process was down overnight,
        # say): the patient hears from us when it opens, not by a text at 3 a.m. A
        # reminder due at closing time itself still goes out in the minutes after.
        link.next_reminder_at = calendar.next_open(now)
        return
    link.reminders_sent += 1
    message_patient(
        referral,
        link.sent_via,
        "patient_reminder",
        purpose="patient_link_reminder",
        regarding_id=link.id,
        link=portal_url("patients.next_step", token=sign(link)),
    )
    record_event(
        referral,
        kind="patient_reminder",
        actor=None,
        summary="Reminder sent to the patient",
        partner_visible=False,
    )
    later = [t for t in reminders if t > now]
    link.next_reminder_at = next_check_at(link, later[0] if later else flag_at)


def _flag_for_a_call(link: PatientLink, referral: Referral, now: datetime, why: str) -> None:
    """Stop the reminders and hand the patient to intake to phone: on the timeline, in
    intake's inbox."""
    link.phone_outreach_flagged_at, link.next_reminder_at = now, None
    record_event(
        referral,
        kind="patient_phone_flag",
        actor=None,
        summary=f"{why}: call them",
        partner_visible=False,
    )
    notify_intake(referral, f"{why}: please call them")


def remind_appointments(limit: int = 200) -> int:
    """The day before a visit: a reminder with the pre-visit instructions."""
    now = utcnow()
    window = timedelta(hours=current_app.config["APPOINTMENT_REMINDER_HOURS"])
    handled = process_due(
        Referral,
        and_(
            Referral.status == Status.SCHEDULED,
            Referral.appointment_at > now,
            Referral.appointment_at <= now + window,
            Referral.appointment_reminder_sent_at.is_(None),
        ),
        Referral.appointment_at,
        lambda referral: _remind_appointment(referral, now),
        limit,
    )
    if handled:
        log.info("appointment reminders: %d sent", handled)
    return handled


def _remind_appointment(referral: Referral, now: datetime) -> None:
    referral.appointment_reminder_sent_at = now
    message_patient(
        referral,
        None,
        "appointment_reminder",
        purpose="appointment_reminder",
        mode=referral.appointment_mode.value if referral.appointment_mode else "video",
        appointment_at=referral.appointment_at,
    )
    record_event(
        referral,
        kind="appointment_reminder",
        actor=None,
        summary="Visit reminder sent to the patient",
        partner_visible=False,
    )
