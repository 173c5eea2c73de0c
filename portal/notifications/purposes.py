"""Whether a message is still worth sending when its turn comes.

A message can wait in the outbox (the provider down, the jobs process stopped) while
what it is about is settled: the office answers the request a reminder chases, the
patient books through the link a reminder points to, the visit is moved. Such a message
would tell its reader something no longer true, so delivery cancels it instead, just
before sending (portal.notifications.delivery). Each purpose that can go stale says
here, once, when it has; a message without one is always sent.
"""

from __future__ import annotations

from collections.abc import Callable

from portal.clock import utcnow
from portal.extensions import db
from portal.models import InfoRequest, OutboxMessage, PatientLink, Referral, Status
from portal.patients.links import LinkProblem, problem_with

NEEDS_INFO_REMINDER = "needs_info_reminder"
NEEDS_INFO_ESCALATION = "needs_info_escalation"
PATIENT_LINK_REMINDER = "patient_link_reminder"
APPOINTMENT_REMINDER = "appointment_reminder"


def _request_settled(message: OutboxMessage) -> str | None:
    request = db.session.get(InfoRequest, message.regarding_id)
    referral = db.session.get(Referral, message.referral_id)
    if request is None or request.closed_at is not None:
        return "the information request was closed before the message went out"
    if referral is None or referral.status is not Status.NEEDS_INFO:
        return "the referral left needs-info before the message went out"
    return None


def _link_settled(message: OutboxMessage) -> str | None:
    link = db.session.get(PatientLink, message.regarding_id)
    referral = db.session.get(Referral, message.referral_id)
    problem = LinkProblem.REVOKED if link is None else problem_with(link)
    if problem is not None:
        return f"the patient link was {problem.value} before the message went out"
    if referral is None or referral.status is not Status.ACCEPTED:
        return "the referral moved on before the message went out"
    return None


def _visit_settled(message: OutboxMessage) -> str | None:
    referral = db.session.get(Referral, message.referral_id)
    if referral is None or referral.status is not Status.SCHEDULED:
        return "the visit was no longer scheduled when the message went out"
    if referral.appointment_at is None or referral.appointment_at <= utcnow():
        return "the visit was over before the message went out"
    # Moving the visit re-arms its reminder (appointment_reminder_sent_at cleared, then
    # set again when the new one is written): this one names the old time.
    reminded_at = referral.appointment_reminder_sent_at
    if reminded_at is None or reminded_at > message.created_at:
        return "the visit was moved before the message went out"
    return None


STALE_WHEN: dict[str, Callable[[OutboxMessage], str | None]] = {
    NEEDS_INFO_REMINDER: _request_settled,
    NEEDS_INFO_ESCALATION: _request_settled,
    PATIENT_LINK_REMINDER: _link_settled,
    APPOINTMENT_REMINDER: _visit_settled,
}


def why_not_send(message: OutboxMessage) -> str | None:
    """Why `message` should no longer go out, or None to send it."""
    stale = STALE_WHEN.get(message.purpose or "")
    return stale(message) if stale is not None else None
