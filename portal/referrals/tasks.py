"""Periodic work on referrals: chasing partners for missing information."""

from __future__ import annotations

import logging
from datetime import datetime

from flask import current_app
from sqlalchemy import and_

from portal.claiming import process_due
from portal.clock import utcnow
from portal.extensions import db
from portal.formatting import count_reminders
from portal.models import InfoRequest, Referral, Status
from portal.notifications.outbox import portal_url, queue_email
from portal.referrals.needs_info import escalation_time, reminder_times
from portal.referrals.workflow import record_event
from portal.sla.calendar import BusinessCalendar
from portal.sla.clocks import load_calendar

log = logging.getLogger(__name__)


def chase_incomplete_referrals(limit: int = 200) -> int:
    """Remind partners of open requests as each reminder falls due; then escalate.

    After downtime one reminder goes out, not one per missed point: the next one is the
    first scheduled point still ahead. Returns how many requests were handled.
    """
    now = utcnow()
    calendar = load_calendar(checked=True)
    handled = process_due(
        InfoRequest,
        and_(InfoRequest.closed_at.is_(None), InfoRequest.next_reminder_at <= now),
        InfoRequest.next_reminder_at,
        lambda request: _follow_up(request, now, calendar),
        limit,
    )
    if handled:
        log.info("needs-info follow-ups: %d requests handled", handled)
    return handled


def _follow_up(request: InfoRequest, now: datetime, calendar: BusinessCalendar) -> None:
    referral = db.session.get(Referral, request.referral_id)
    if referral.status is not Status.NEEDS_INFO:
        request.next_reminder_at = None
        return
    escalate_at = escalation_time(request, calendar)
    link = portal_url("referrals.detail", reference=referral.reference)
    if now >= escalate_at:
        request.escalated_at, request.next_reminder_at = now, None
        queue_email(
            recipient=current_app.config["PARTNER_SUCCESS_EMAIL"],
            template="needs_info_escalation",
            referral=referral,
            purpose="needs_info_escalation",
            regarding_id=request.id,
            reference=referral.reference,
            partner=referral.partner.name,
            reminders=count_reminders(request.reminders_sent),
            link=link,
        )
        record_event(
            referral,
            kind="needs_info_escalated",
            actor=None,
            summary=f"No answer {count_reminders(request.reminders_sent)}: "
            "escalated to partner success",
            partner_visible=False,
        )
        return
    request.reminders_sent += 1
    queue_email(
        recipient=referral.partner.referral_contact_email,
        template="needs_info_reminder",
        referral=referral,
        purpose="needs_info_reminder",
        regarding_id=request.id,
        reference=referral.reference,
        link=link,
    )
    record_event(
        referral,
        kind="needs_info_reminder",
        actor=None,
        summary="Reminder sent: information still needed",
        partner_visible=True,
        touch=False,  # a reminder is no change to the referral: no version, no row lock
    )
    later = [t for t in reminder_times(request, calendar) if t > now]
    request.next_reminder_at = later[0] if later else escalate_at
