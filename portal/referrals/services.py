"""Submitting referrals and the staff and partner actions on them.

Each function checks, changes and records in the current session and never commits:
the route that calls it commits once, so a change, its timeline event, its audit entry
and its messages land together or not at all.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

from flask_babel import gettext
from sqlalchemy import Select, bindparam, func, select
from sqlalchemy.exc import IntegrityError

from portal.auditing import record_audit
from portal.clock import utcnow
from portal.extensions import db
from portal.formatting import format_moment
from portal.models import (
    AppointmentMode,
    Channel,
    Consent,
    ConsentKind,
    ContactMethod,
    ItemKind,
    OutreachAttempt,
    OutreachResult,
    Partner,
    PatientLanguage,
    PatientLink,
    Referral,
    ReferralEvent,
    ReferralItem,
    ServiceLine,
    Status,
    Urgency,
    User,
)
from portal.notifications.referrals import (
    notify_intake_of_urgent_referral,
    notify_partner_of_update,
)
from portal.referrals.access import visible_referrals
from portal.referrals.consent import current_wording
from portal.referrals.document_store import store_document
from portal.referrals.documents import Upload
from portal.referrals.duplicates import (
    PossibleDuplicate,
    find_possible_duplicate,
    record_possible_duplicate,
)
from portal.referrals.needs_info import ask_for_missing_items_at_submission
from portal.referrals.references import new_reference
from portal.referrals.workflow import (
    TransitionRefused,
    apply_transition,
    record_event,
    transitions,
)
from portal.sla.clocks import sync_clock

OUTREACH_ATTEMPTS_BEFORE_UNREACHABLE = 3


@dataclass
class ReferralSubmission:
    """Everything a referring office sends, already validated by the form."""

    partner: Partner
    service_line: ServiceLine
    urgency: Urgency
    referring_provider_name: str
    referring_provider_npi: str
    patient_first_name: str
    patient_last_name: str
    patient_date_of_birth: date
    patient_phone: str | None
    patient_email: str | None
    preferred_contact: ContactMethod
    reason: str
    clinical_context: str
    consent_to_contact: bool
    consent_to_outcome_sharing: bool
    submission_token: str
    source_channel: Channel = Channel.PORTAL
    source_code: str | None = None
    documents: list[Upload] = field(default_factory=list)
    # Answers and documents for the service line's required items, by RequiredItem id.
    item_answers: dict[int, str] = field(default_factory=dict)
    item_documents: dict[int, Upload] = field(default_factory=dict)
    patient_language: PatientLanguage = PatientLanguage.ENGLISH
    # Look for an open referral from the office for the same patient first (duplicates.py):
    # people submitting, yes; referrals built by code (the demo desk, tests), no.
    check_for_duplicates: bool = True
    # The office saw the possible-duplicate warning and chose to send anyway.
    submit_anyway: bool = False


@dataclass
class SubmissionResult:
    referral: Referral
    created: bool  # False when the same form had already been submitted


def find_submitted(partner_id: int, submission_token: str) -> Referral | None:
    return db.session.scalar(
        select(Referral).where(
            Referral.partner_id == partner_id, Referral.submission_token == submission_token
        )
    )


def submit_referral(submission: ReferralSubmission, submitted_by: User) -> SubmissionResult:
    """Record a new referral and route it: urgent, routine review, or needs_info.

    Idempotent on the form's submission token: a second submission of the same form
    returns the first referral. Raises PossibleDuplicate when the office has an open
    referral for the same patient, unless it chose to submit anyway. Commits, because
    only a committed insert can detect a concurrent duplicate.
    """
    if not submission.consent_to_contact:
        raise TransitionRefused(gettext("The patient's consent to be contacted is required."))
    existing = find_submitted(submission.partner.id, submission.submission_token)
    if existing is not None:
        return SubmissionResult(existing, created=False)
    earlier = None
    if submission.check_for_duplicates:
        earlier = find_possible_duplicate(
            submission.partner,
            submission.patient_first_name,
            submission.patient_last_name,
            submission.patient_date_of_birth,
        )
        if earlier is not None and not submission.submit_anyway:
            raise PossibleDuplicate(earlier)
    try:
        referral = _create_referral(submission, submitted_by)
        if earlier is not None:
            record_possible_duplicate(referral, earlier, submitted_by)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        existing = find_submitted(submission.partner.id, submission.submission_token)
        if existing is None:
            raise
        return SubmissionResult(existing, created=False)
    return SubmissionResult(referral, created=True)


def _create_referral(submission: ReferralSubmission, submitted_by: User) -> Referral:
    now = utcnow()
    referral = Referral(
        reference=_unused_reference(),
        partner=submission.partner,
        service_line=submission.service_line,
        status=Status.SUBMITTED,
        urgency=submission.urgency,
        referring_provider_name=submission.referring_provider_name,
        referring_provider_npi=submission.referring_provider_npi,
        patient_first_name=submission.patient_first_name,
        patient_last_name=submission.patient_last_name,
        patient_date_of_birth=submission.patient_date_of_birth,
        patient_phone=submission.patient_phone,
        patient_email=submission.patient_email,
        preferred_contact=submission.preferred_contact,
        patient_language=submission.patient_language,
        reason=submission.reason,
        clinical_context=submission.clinical_context,
        source_channel=submission.source_channel,
        source_code=submission.source_code,
        submitted_by=submitted_by,
        submission_token=submission.submission_token,
        submitted_at=now,
        updated_at=now,
    )
    db.session.add(referral)
    db.session.flush()

    for kind, granted in (
        (ConsentKind.CONTACT, submission.consent_to_contact),
        (ConsentKind.OUTCOME_SHARING, submission.consent_to_outcome_sharing),
    ):
        db.session.add(
            Consent(
                referral_id=referral.id,
                kind=kind,
                granted=granted,
                wording_version=current_wording(kind).version,
                attested_by_id=submitted_by.id,
                attested_at=now,
            )
        )
    for upload in submission.documents:
        store_document(referral, upload, submitted_by)

    for required in submission.service_line.required_items:
        item = ReferralItem(
            referral=referral, required_item=required, label=required.label, kind=required.kind
        )
        answer = submission.item_answers.get(required.id, "").strip()
        upload = submission.item_documents.get(required.id)
        if required.kind is ItemKind.ANSWER and answer:
            item.answer, item.provided_at = answer, now
        elif required.kind is ItemKind.DOCUMENT and upload is not None:
            item.document, item.provided_at = store_document(referral, upload, submitted_by), now
        db.session.add(item)

    db.session.flush()
    record_event(
        referral,
        kind="submitted",
        actor=submitted_by,
        summary="Referral received",
        partner_visible=True,
        to_status=Status.SUBMITTED,
    )
    record_audit(
        "referral.submitted",
        actor=submitted_by,
        referral=referral,
        channel=submission.source_channel.value,
    )
    _route_new_referral(referral)
    return referral


def _route_new_referral(referral: Referral) -> None:
    """PRODUCT.md's three outcomes at intake."""
    missing = referral.missing_items
    if missing:
        ask_for_missing_items_at_submission(referral)
        apply_transition(
            referral,
            "incomplete_at_submission",
            None,
            expected_version=None,
            summary="More information needed: " + "; ".join(item.label for item in missing),
        )
    else:
        notify_partner_of_update(referral, "Referral received")
        sync_clock(referral)
    if referral.urgency is Urgency.URGENT:
        record_event(
            referral,
            kind="urgent_routed",
            actor=None,
            summary="Urgent: placed at the top of the intake queue and on-call intake notified",
            partner_visible=False,
        )
        notify_intake_of_urgent_referral(referral)


def _unused_reference() -> str:
    while True:
        reference = new_reference()
        if db.session.scalar(select(Referral.id).where(Referral.reference == reference)) is None:
            return reference


# --- Actions -----------------------------------------------------------------------


def first_touch_recorded(referral: Referral) -> str | None:
    """The first-touch action's guard: it is neither offered nor taken twice (from
    needs_info, where a referral can wait before or after its first touch)."""
    if referral.first_touch_at is not None:
        return gettext("First touch was already recorded for this referral.")
    return None


def record_first_touch(
    referral: Referral, actor: User, *, expected_version: int | None, note: str = ""
) -> ReferralEvent:
    return apply_transition(
        referral, "first_touch", actor, expected_version=expected_version, staff_note=note
    )


def resume_review(
    referral: Referral, actor: User, *, expected_version: int | None, note: str = ""
) -> ReferralEvent:
    return apply_transition(
        referral, "resume_review", actor, expected_version=expected_version, staff_note=note
    )


def accept(
    referral: Referral,
    actor: User,
    *,
    expected_version: int | None,
    provider: str,
    note: str = "",
) -> ReferralEvent:
    return apply_transition(
        referral,
        "accept",
        actor,
        expected_version=expected_version,
        summary=f"Accepted and assigned to {provider}",
        staff_note=note,
        changes={"assigned_provider": provider},
    )


def decline(
    referral: Referral,
    actor: User,
    *,
    expected_version: int | None,
    reason: str,
    note: str = "",
) -> ReferralEvent:
    return apply_transition(
        referral,
        "decline",
        actor,
        expected_version=expected_version,
        summary=f"Declined: not eligible ({reason})",
        staff_note=note,
        changes={"decline_reason": reason},
    )


def redirect_referral(
    referral: Referral,
    actor: User,
    *,
    expected_version: int | None,
    destination: str,
    note: str = "",
) -> ReferralEvent:
    return apply_transition(
        referral,
        "redirect",
        actor,
        expected_version=expected_version,
        summary=f"Redirected to {destination}",
        staff_note=note,
        changes={"redirect_destination": destination},
    )


def log_outreach(
    referral: Referral,
    actor: User,
    *,
    expected_version: int | None,
    channel: ContactMethod,
    result: OutreachResult,
    note: str = "",
) -> ReferralEvent:
    """Log a try at reaching the patient; the first success is shown to the partner."""
    first_reach = result is OutreachResult.REACHED and referral.patient_reached_at is None
    result_text = result.value.replace("_", " ")
    event = apply_transition(
        referral,
        "log_outreach",
        actor,
        expected_version=expected_version,
        summary="Patient reached"
        if first_reach
        else f"Contact attempt by {channel}: {result_text}",
        partner_visible=first_reach,
        notify_partner=first_reach,
        message_headline="Patient reached",
        staff_note=note,
        changes={"patient_reached_at": utcnow()} if first_reach else None,
    )
    db.session.add(
        OutreachAttempt(
            referral=referral, at=event.at, actor=actor, channel=channel, result=result, note=note
        )
    )
    return event


def schedule(
    referral: Referral,
    actor: User,
    *,
    expected_version: int | None,
    appointment_at: datetime,
    mode: AppointmentMode,
    note: str = "",
) -> ReferralEvent:
    if appointment_at <= utcnow():
        raise TransitionRefused(gettext("The appointment must be in the future."))
    rescheduling = referral.status is Status.SCHEDULED
    when = format_moment(appointment_at)
    changes: dict[str, object] = {"appointment_at": appointment_at, "appointment_mode": mode}
    if referral.appointment_at != appointment_at:
        changes["appointment_reminder_sent_at"] = None  # remind again for the new time
    return apply_transition(
        referral,
        "schedule",
        actor,
        expected_version=expected_version,
        summary=f"First visit {'rescheduled' if rescheduling else 'scheduled'}: {when}, {mode}",
        staff_note=note,
        changes=changes,
    )


def record_completed(
    referral: Referral, actor: User, *, expected_version: int | None, note: str = ""
) -> ReferralEvent:
    if referral.appointment_at and referral.appointment_at > utcnow():
        raise TransitionRefused(
            gettext("The visit is still in the future; it cannot be completed yet.")
        )
    return apply_transition(
        referral, "record_completed", actor, expected_version=expected_version, staff_note=note
    )


def record_no_show(
    referral: Referral, actor: User, *, expected_version: int | None, note: str = ""
) -> ReferralEvent:
    if referral.appointment_at and referral.appointment_at > utcnow():
        raise TransitionRefused(
            gettext("The visit is still in the future; it cannot be a no-show yet.")
        )
    return apply_transition(
        referral, "record_no_show", actor, expected_version=expected_version, staff_note=note
    )


def unanswered_attempts(referral: Referral) -> int:
    """The attempts that count towards "unreachable": those that did not reach the
    patient, made after we last heard from them (a call that reached them, or their
    answer on a link) and, after a no-show, after the missed visit (the tries that led
    to the booking say nothing about reaching them now)."""
    attempts = sorted(referral.outreach_attempts, key=lambda attempt: attempt.at)
    answered_link = db.session.scalar(
        select(func.max(PatientLink.used_at)).where(PatientLink.referral_id == referral.id)
    )
    reaches = [attempt.at for attempt in attempts if attempt.result is OutreachResult.REACHED]
    since = max([*reaches, answered_link] if answered_link else reaches, default=None)
    if referral.status is Status.NO_SHOW and referral.appointment_at is not None:
        since = referral.appointment_at if since is None else max(since, referral.appointment_at)
    return sum(
        attempt.result is not OutreachResult.REACHED and (since is None or attempt.at > since)
        for attempt in attempts
    )


def mark_unreachable(
    referral: Referral, actor: User, *, expected_version: int | None, note: str = ""
) -> ReferralEvent:
    attempts = unanswered_attempts(referral)
    if attempts < OUTREACH_ATTEMPTS_BEFORE_UNREACHABLE:
        raise TransitionRefused(
            gettext(
                "Log at least %(least)s contact attempts that did not reach the patient "
                "before marking them unreachable (%(attempts)s since they were last "
                "reached or missed their visit).",
                least=OUTREACH_ATTEMPTS_BEFORE_UNREACHABLE,
                attempts=attempts,
            )
        )
    return apply_transition(
        referral, "mark_unreachable", actor, expected_version=expected_version, staff_note=note
    )


def withdraw(
    referral: Referral, actor: User, *, expected_version: int | None, reason: str = ""
) -> ReferralEvent:
    return apply_transition(
        referral,
        "withdraw",
        actor,
        expected_version=expected_version,
        summary="Withdrawn by the referring office" + (f": {reason}" if reason else ""),
    )


def share_follow_up(
    referral: Referral, actor: User, *, expected_version: int | None, message: str
) -> ReferralEvent:
    """A note for the referring office: only with the patient's outcome-sharing consent."""
    consent = db.session.scalar(
        select(Consent).where(
            Consent.referral_id == referral.id, Consent.kind == ConsentKind.OUTCOME_SHARING
        )
    )
    if consent is None or not consent.granted:
        raise TransitionRefused(
            gettext(
                "The patient did not consent to outcome sharing, so follow-up notes cannot be "
                "shared with the referring office."
            )
        )
    return apply_transition(
        referral,
        "share_follow_up",
        actor,
        expected_version=expected_version,
        summary=f"Follow-up note: {message}",
    )


def add_staff_note(
    referral: Referral, actor: User, *, expected_version: int | None, note: str
) -> ReferralEvent:
    return apply_transition(
        referral, "add_note", actor, expected_version=expected_version, staff_note=note
    )


# --- Reading -----------------------------------------------------------------------


def timeline(referral: Referral, user: User) -> list[ReferralEvent]:
    """The referral's events, newest first; partners see only partner-visible ones."""
    statement = (
        select(ReferralEvent)
        .where(ReferralEvent.referral_id == referral.id)
        .order_by(ReferralEvent.at.desc(), ReferralEvent.id.desc())
    )
    if user.is_partner_user:
        statement = statement.where(ReferralEvent.partner_visible.is_(True))
    return list(db.session.scalars(statement))


# Headlines without free text, for events whose summary may carry some (item labels,
# messages, reasons) when the reader's role sees no clinical content.
CONTENT_FREE_HEADLINES = {
    "needs_info": "More information needed",
    "partner_message": "Message from the referring office",
    "needs_info_escalated": "No answer from the referring office: escalated",
}


def event_headline(event: ReferralEvent, user: User) -> str:
    """What `user` reads as the event's headline: the whole summary for those who see
    clinical content, otherwise the action's fixed wording (statuses and times only)."""
    if user.sees_patient_details:
        return event.summary
    if event.kind in transitions():
        return transitions()[event.kind].summary
    return CONTENT_FREE_HEADLINES.get(event.kind, event.summary)


TIMELINE_AUDIENCES = {True: "partner", False: "staff"}


def timeline_etag(reference: str, version: int, last_event: int, *, partner: bool) -> str:
    """A timeline's ETag: changes when anything its audience (partner users, or staff)
    sees changes: the referral row (its version) or its events (`last_event`: the
    newest this audience sees)."""
    return f'"{reference}-{version}-{last_event}-{TIMELINE_AUDIENCES[partner]}"'


def timeline_state_statement(user: User) -> Select:
    """(referral id, version, newest event id `user` sees) of the referral named by the
    bound `reference`, when `user` may see it: what its timeline's ETag is made of, in
    one indexed read and without loading the referral. The view runs it for its user;
    the early 304 (portal/referrals/timeline_poll.py) for the user of a session row."""
    newest = select(func.max(ReferralEvent.id)).where(ReferralEvent.referral_id == Referral.id)
    if user.is_partner_user:
        newest = newest.where(ReferralEvent.partner_visible.is_(True))
    return (
        visible_referrals(user)
        .with_only_columns(Referral.id, Referral.version, newest.scalar_subquery())
        .where(Referral.reference == bindparam("reference"))
    )


def timeline_state(user: User, reference: str) -> tuple[int, int, int] | None:
    """(referral id, version, newest event id `user` sees) for a referral `user` may
    see, or None (`timeline_state_statement`)."""
    row = db.session.execute(timeline_state_statement(user), {"reference": reference}).first()
    return None if row is None else (row[0], row[1], row[2] or 0)


def last_event_id(referral: Referral, user: User) -> int:
    """The newest timeline event `user` can see (one indexed query)."""
    statement = select(func.max(ReferralEvent.id)).where(ReferralEvent.referral_id == referral.id)
    if user.is_partner_user:
        statement = statement.where(ReferralEvent.partner_visible.is_(True))
    return db.session.scalar(statement) or 0


def consents_of(referral: Referral) -> list[Consent]:
    return list(
        db.session.scalars(
            select(Consent).where(Consent.referral_id == referral.id).order_by(Consent.kind)
        )
    )
