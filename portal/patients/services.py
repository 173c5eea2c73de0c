"""Sending a patient their next step, checking who opened it, and recording the answer."""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime
from urllib.parse import urlsplit

from flask import current_app
from flask_babel import gettext
from sqlalchemy import select, update
from sqlalchemy.orm.attributes import set_committed_value

from portal.clock import utcnow
from portal.extensions import db
from portal.formatting import format_moment
from portal.i18n import in_practice_locale, patient_language
from portal.localtime import practice_zone
from portal.models import (
    AppointmentMode,
    ContactMethod,
    PatientAnswer,
    PatientLanguage,
    PatientLink,
    Referral,
    ReferralEvent,
    SlotOffer,
    Status,
    User,
)
from portal.notifications.backends import texts_can_be_sent
from portal.notifications.outbox import portal_url
from portal.notifications.referrals import (
    message_patient,
    notify_intake,
    notify_partner_of_update,
    send_patient_next_step,
)
from portal.patients.calendar import visit_calendar
from portal.patients.links import NEXT_STEP, new_public_id, sign
from portal.phones import display_phone
from portal.referrals.workflow import (
    TransitionRefused,
    apply_transition,
    check_transition,
    record_event,
    revoke_patient_links,
)
from portal.sla.calendar import BusinessCalendar
from portal.sla.clocks import load_calendar


@dataclass(frozen=True)
class Slot:
    starts_at: datetime
    mode: AppointmentMode


def latest_link(referral: Referral) -> PatientLink | None:
    return db.session.scalar(
        select(PatientLink)
        .where(PatientLink.referral_id == referral.id)
        .order_by(PatientLink.created_at.desc(), PatientLink.id.desc())
        .limit(1)
    )


def send_next_step_link(
    referral: Referral,
    actor: User,
    *,
    expected_version: int | None,
    via: ContactMethod,
    slots: list[Slot],
    note: str = "",
) -> ReferralEvent:
    """Send (or resend) the patient's link; a new link revokes every earlier one."""
    recipient = referral.patient_email if via is ContactMethod.EMAIL else referral.patient_phone
    if not recipient:
        raise TransitionRefused(f"There is no patient {'email' if via == 'email' else 'phone'}.")
    if via is ContactMethod.PHONE:
        raise TransitionRefused("Links go by email or text message; choose one of those.")
    if via is ContactMethod.SMS and not texts_can_be_sent(current_app.config):
        raise TransitionRefused(
            "No text message provider is set up: send the link by email, or phone the patient."
        )
    if any(slot.starts_at <= utcnow() for slot in slots):
        raise TransitionRefused("Offered times must be in the future.")
    event = apply_transition(
        referral,
        "send_patient_link",
        actor,
        expected_version=expected_version,
        staff_note=note,
    )
    _issue_link(referral, actor, via, slots)
    return event


def locked_out_reason(referral: Referral) -> str | None:
    """Why a link cannot be reissued (None when the patient is locked out)."""
    if referral.patient_locked_out_at is None:
        return "The patient is not locked out of a link: send them a new one instead."
    return None


def reissue_patient_link(
    referral: Referral, actor: User, *, expected_version: int | None, note: str = ""
) -> ReferralEvent:
    """After a lockout: a new link by the same channel offering the locked link's times
    that are still ahead, so intake need not type them again."""
    # Who may, from where, on which version: before reading what the link offered.
    check_transition(referral, "reissue_patient_link", actor, expected_version)
    locked = latest_link(referral)
    if locked is None or locked.locked_at is None:
        raise TransitionRefused("The patient's latest link is not locked: send a new one.")
    now = utcnow()
    if locked.offered_times_passed(now):
        raise TransitionRefused(
            "Every time the locked link offered has passed: send a new link with new times."
        )
    event = apply_transition(
        referral,
        "reissue_patient_link",
        actor,
        expected_version=expected_version,
        staff_note=note,
    )
    slots = [Slot(s.starts_at, s.mode) for s in locked.slots_ahead(now)]
    _issue_link(referral, actor, locked.sent_via, slots)
    return event


def _issue_link(
    referral: Referral, actor: User, via: ContactMethod, slots: list[Slot]
) -> PatientLink:
    now = utcnow()
    revoke_patient_links(referral, now)  # which also clears a "locked out" mark
    link = PatientLink(
        public_id=new_public_id(),
        referral_id=referral.id,
        purpose=NEXT_STEP,
        sent_by_id=actor.id,
        sent_via=via,
        created_at=now,
        expires_at=now + current_app.config["PATIENT_LINK_MAX_AGE"],
    )
    link.slots = [
        SlotOffer(starts_at=s.starts_at, mode=s.mode)
        for s in sorted(slots, key=lambda s: s.starts_at)
    ]
    db.session.add(link)
    db.session.flush()
    schedule_patient_reminders(link)
    send_patient_next_step(referral, via, portal_url("patients.next_step", token=sign(link)))
    return link


class DateOfBirthCheck(enum.Enum):
    """What one try at the date of birth found."""

    MATCHED = "matched"
    WRONG = "wrong"  # counted; the link is locked if it was the last try
    LOCKED = "locked"  # not compared: the link locked before this try came in
    BUSY = "busy"  # not compared: the last tries are being checked right now


def check_date_of_birth(link: PatientLink, given: date) -> DateOfBirthCheck:
    """Compare a date of birth with the record, only after taking one of the link's
    tries; five wrong tries lock the link until staff reissue it.

    The try is taken by one conditional UPDATE before anything is compared, so guesses
    sent side by side are each counted first, and none is compared once the link has
    locked: a late guess cannot learn whether it was right."""
    referral = db.session.get(Referral, link.referral_id)
    attempts = _take_a_try(link)
    if attempts is None:
        locked_at = db.session.scalar(
            select(PatientLink.locked_at).where(PatientLink.id == link.id)
        )
        return DateOfBirthCheck.BUSY if locked_at is None else DateOfBirthCheck.LOCKED
    if referral.patient_date_of_birth == given:
        _give_back_a_try(link)  # only wrong dates count towards the lock
        return DateOfBirthCheck.MATCHED
    if attempts >= current_app.config["PATIENT_LINK_MAX_TRIES"]:
        lock_out(link, referral)
    return DateOfBirthCheck.WRONG


def _take_a_try(link: PatientLink) -> int | None:
    """Count a try on the link while it is unlocked with tries to spare: the count with
    it, or None when there was none to take."""
    taken = db.session.scalar(
        update(PatientLink)
        .where(
            PatientLink.id == link.id,
            PatientLink.locked_at.is_(None),
            PatientLink.failed_attempts < current_app.config["PATIENT_LINK_MAX_TRIES"],
        )
        .values(failed_attempts=PatientLink.failed_attempts + 1)
        .returning(PatientLink.failed_attempts)
        .execution_options(synchronize_session=False)
    )
    if taken is not None:
        # As loaded, not as changed: a flush must not write a count others moved on.
        set_committed_value(link, "failed_attempts", taken)
    return taken


def _give_back_a_try(link: PatientLink) -> None:
    given_back = db.session.scalar(
        update(PatientLink)
        .where(PatientLink.id == link.id)
        .values(failed_attempts=PatientLink.failed_attempts - 1)
        .returning(PatientLink.failed_attempts)
        .execution_options(synchronize_session=False)
    )
    set_committed_value(link, "failed_attempts", given_back)


def lock_out(link: PatientLink, referral: Referral) -> None:
    """Lock the link and hand the patient to a person: intake's queue marks the referral
    and intake is told, since the patient can no longer answer by themselves. Only the
    request whose UPDATE locks the link does this; a link already locked is left as is."""
    now = utcnow()
    locked = db.session.execute(
        update(PatientLink)
        .where(PatientLink.id == link.id, PatientLink.locked_at.is_(None))
        .values(locked_at=now, next_reminder_at=None)
        .execution_options(synchronize_session=False)
    )
    if locked.rowcount != 1:
        return
    set_committed_value(link, "locked_at", now)
    set_committed_value(link, "next_reminder_at", None)
    db.session.refresh(referral)  # its version as it is now, not as this request read it
    referral.patient_locked_out_at = now
    record_event(
        referral,
        kind="patient_link_locked",
        actor=None,
        summary="Patient locked out of their link after "
        f"{link.failed_attempts} wrong dates of birth: call them or reissue the link",
        partner_visible=False,
    )
    notify_intake(
        referral, "The patient is locked out of their link: please call them or reissue it"
    )


@dataclass(frozen=True)
class PatientChoice:
    answer: PatientAnswer
    contact: ContactMethod
    slot_id: int | None = None
    reason: str = ""
    language: PatientLanguage | None = None


def record_patient_answer(link: PatientLink, choice: PatientChoice) -> ReferralEvent:
    """Use the link up and move the referral on: booked, call me, or declined."""
    referral = db.session.get(Referral, link.referral_id)
    now = utcnow()
    link.used_at, link.next_reminder_at = now, None
    link.answer, link.answer_contact = choice.answer, choice.contact
    contact_text = {"phone": "a phone call", "sms": "text messages", "email": "email"}[
        choice.contact.value
    ]
    if choice.language is not None and choice.language is not referral.patient_language:
        # Their messages from now on (the confirmation first) follow the page they used.
        referral.patient_language = choice.language
        contact_text += f", reads {choice.language.label}"
    if choice.answer is PatientAnswer.SLOT:
        slot = next((s for s in link.slots if s.id == choice.slot_id), None)
        if slot is None:
            raise TransitionRefused("Choose one of the times offered.")
        slot.chosen_at = now
        with in_practice_locale():  # the timeline is staff's and the partner's to read
            when = format_moment(slot.starts_at)
        event = apply_transition(
            referral,
            "patient_answered",
            None,
            expected_version=None,
            to_status=Status.SCHEDULED,
            summary=f"Patient confirmed next step: booked {when} ({slot.mode}); "
            f"prefers {contact_text}",
            changes={
                "appointment_at": slot.starts_at,
                "appointment_mode": slot.mode,
                "appointment_reminder_sent_at": None,
            },
        )
        notify_partner_of_update(referral, "First visit scheduled")
        message_patient(
            referral,
            choice.contact,
            "visit_booked",
            mode=slot.mode.value,
            appointment_at=slot.starts_at,
            attachment=visit_calendar_file(referral, slot),
        )
        headline = "The patient booked a visit"
    elif choice.answer is PatientAnswer.CALL_ME:
        event = apply_transition(
            referral,
            "patient_answered",
            None,
            expected_version=None,
            to_status=Status.ACCEPTED,
            summary=f"Patient confirmed next step: asked for a call; prefers {contact_text}",
            changes={"patient_reached_at": referral.patient_reached_at or now},
        )
        headline = "The patient asked for a call"
    else:
        event = apply_transition(
            referral,
            "patient_answered",
            None,
            expected_version=None,
            to_status=Status.WITHDRAWN,
            summary="Patient declined the next step",
            staff_note=f"Patient's reason: {choice.reason}" if choice.reason else "",
            # They proved who they are and answered: reached, as one who asks for a call.
            changes={"patient_reached_at": referral.patient_reached_at or now},
        )
        notify_partner_of_update(referral, "Closed: the patient declined")
        headline = "The patient declined"
    notify_intake(referral, headline)
    return event


def visit_calendar_file(referral: Referral, slot: SlotOffer) -> tuple[str, str]:
    """The booked visit as an .ics file (name, text), in the patient's language: the
    practice's name, the kind of visit and its phone number; nothing about the patient."""
    config = current_app.config
    with patient_language(referral.patient_language):
        practice = config["PRACTICE_NAME"]
        if slot.mode is AppointmentMode.VIDEO:
            summary = gettext("Video visit with %(practice)s", practice=practice)
        else:
            summary = gettext("Phone visit with %(practice)s", practice=practice)
        description = gettext(
            "Questions? Call us at %(phone)s.", phone=display_phone(config["PRACTICE_PHONE"])
        )
        content = visit_calendar(
            uid=f"visit-{slot.id}@{urlsplit(config['PORTAL_BASE_URL']).hostname}",
            starts_at=slot.starts_at,
            minutes=config["VISIT_MINUTES"],
            zone=practice_zone(),
            summary=summary,
            description=description,
            organizer_name=practice,
            organizer_email=config["MAIL_FROM"],
        )
    return "visit.ics", content.decode()


def reminder_points(
    link: PatientLink, calendar: BusinessCalendar
) -> tuple[list[datetime], datetime]:
    """When the patient is reminded of their link, and when intake is told to phone."""
    config = current_app.config
    reminders = [
        calendar.add_business_minutes(link.created_at, m)
        for m in config["PATIENT_REMINDER_MINUTES"]
    ]
    flag = calendar.add_business_minutes(link.created_at, config["PATIENT_PHONE_FLAG_MINUTES"])
    return reminders, flag


def schedule_patient_reminders(link: PatientLink) -> None:
    reminders, _flag = reminder_points(link, load_calendar(checked=True))
    link.next_reminder_at = next_check_at(link, reminders[0])


def next_check_at(link: PatientLink, due: datetime) -> datetime:
    """When the reminder job next looks at `link`: at `due`, or sooner when the last
    time it offers passes, since then the patient has no time left to pick and intake
    is told to call them (portal.patients.tasks)."""
    if not link.slots:
        return due
    return min(due, max(slot.starts_at for slot in link.slots))
