"""The needs-info loop: intake asks for what is missing, the referring office answers.

A request is a checklist of referral items (the service line's required items and
anything else intake names) plus a message. The partner answers item by item; a
complete answer closes the request and returns the referral to intake's queue, a
partial one keeps it in needs_info and says what is still missing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from flask import current_app
from flask_babel import gettext
from sqlalchemy import select

from portal.clock import utcnow
from portal.extensions import db
from portal.models import (
    CloseReason,
    InfoRequest,
    ItemKind,
    Referral,
    ReferralEvent,
    ReferralItem,
    RequiredItem,
    Status,
    User,
)
from portal.notifications.referrals import notify_intake
from portal.referrals.document_store import store_document
from portal.referrals.documents import Upload
from portal.referrals.workflow import TransitionRefused, apply_transition, record_event
from portal.sla.calendar import BusinessCalendar
from portal.sla.clocks import load_calendar


@dataclass
class InfoAnswer:
    """What the partner sent back: by ReferralItem id."""

    answers: dict[int, str] = field(default_factory=dict)
    documents: dict[int, Upload] = field(default_factory=dict)
    message: str = ""


def open_request(referral: Referral, *, lock: bool = False) -> InfoRequest | None:
    statement = (
        select(InfoRequest)
        .where(InfoRequest.referral_id == referral.id, InfoRequest.closed_at.is_(None))
        .order_by(InfoRequest.id.desc())
    )
    if lock:  # the chase job locks this row first: take it before touching the referral
        statement = statement.with_for_update(of=InfoRequest)
    return db.session.scalar(statement)


def requested_items(request: InfoRequest) -> list[ReferralItem]:
    return list(
        db.session.scalars(
            select(ReferralItem)
            .where(ReferralItem.info_request_id == request.id)
            .order_by(ReferralItem.id)
        )
    )


def open_items(referral: Referral) -> list[ReferralItem]:
    """Items the open request still waits for (empty when nothing is asked)."""
    return items_waiting(open_request(referral))


def items_waiting(request: InfoRequest | None) -> list[ReferralItem]:
    """Items `request` (a referral's open request, if any) still waits for."""
    if request is None:
        return []
    return [item for item in requested_items(request) if not item.is_provided]


def ask_for_missing_items_at_submission(referral: Referral) -> InfoRequest:
    """The portal's own request when required items were missing from the form."""
    request = InfoRequest(
        referral_id=referral.id,
        message=f"{referral.service_line.name} referrals need these before we can review.",
    )
    db.session.add(request)
    db.session.flush()
    for item in referral.missing_items:
        item.info_request_id = request.id
    schedule_follow_ups(request)
    return request


def request_information(
    referral: Referral,
    actor: User,
    *,
    expected_version: int | None,
    required_item_ids: list[int],
    other_documents: list[str],
    other_questions: list[str],
    message: str,
    note: str = "",
) -> ReferralEvent:
    """Intake asks the referring office for items; any earlier open request is folded in."""
    if not (required_item_ids or other_documents or other_questions):
        raise TransitionRefused(gettext("Choose at least one item to ask for."))
    now = utcnow()
    earlier = open_request(referral)
    request = InfoRequest(
        referral_id=referral.id, requested_by_id=actor.id, requested_at=now, message=message
    )
    db.session.add(request)
    db.session.flush()
    schedule_follow_ups(request)
    if earlier is not None:
        for item in requested_items(earlier):
            if not item.is_provided:
                item.info_request_id = request.id
        earlier.closed_at, earlier.next_reminder_at = now, None
        earlier.close_reason = CloseReason.SUPERSEDED

    wanted = {
        item.id: item
        for item in referral.service_line.all_required_items
        if item.id in set(required_item_ids)
    }
    for required in wanted.values():
        _ask(referral, request, required.label, required.kind, required)
    for label in other_documents:
        _ask(referral, request, label, ItemKind.DOCUMENT, None)
    for label in other_questions:
        _ask(referral, request, label, ItemKind.ANSWER, None)
    labels = [item.label for item in requested_items(request)]
    summary = "More information needed: " + "; ".join(labels)
    if message:
        summary = f"{summary}. {message}"
    return apply_transition(
        referral,
        "request_info",
        actor,
        expected_version=expected_version,
        summary=summary,
        staff_note=note,
    )


PARTNER_MESSAGE_PREFIX = "Message from the referring office: "


def _ask(
    referral: Referral,
    request: InfoRequest,
    label: str,
    kind: ItemKind,
    required: RequiredItem | None,
) -> None:
    """Put an item on the request: reuse an unprovided one with the same label."""
    for item in referral.items:
        if item.label == label and item.kind is kind and not item.is_provided:
            item.info_request_id = request.id
            return
    db.session.add(
        ReferralItem(
            referral=referral,
            required_item=required,
            label=label[:120],
            kind=kind,
            info_request_id=request.id,
        )
    )


def answer_information(
    referral: Referral,
    actor: User,
    answer: InfoAnswer,
    *,
    expected_version: int | None,
) -> tuple[ReferralEvent, list[ReferralItem]]:
    """Record the partner's answer. Returns the event and the items still missing."""
    request = open_request(referral, lock=True)
    if request is None:
        raise TransitionRefused(gettext("Nothing is being asked for on this referral any more."))
    now = utcnow()
    items = requested_items(request)
    answered = []
    for item in items:
        if item.is_provided:
            continue
        if item.kind is ItemKind.ANSWER and answer.answers.get(item.id, "").strip():
            item.answer, item.provided_at = answer.answers[item.id].strip(), now
            answered.append(item)
        elif item.kind is ItemKind.DOCUMENT and item.id in answer.documents:
            item.document = store_document(referral, answer.documents[item.id], actor)
            item.provided_at = now
            answered.append(item)
    if not answered and not answer.message.strip():
        raise TransitionRefused(gettext("Answer at least one item before sending."))
    still_missing = [item for item in items if not item.is_provided]
    if still_missing:
        to_status = Status.NEEDS_INFO
        summary = (
            f"Partial answer received ({len(answered)} of {len(items)}). Still missing: "
            + "; ".join(item.label for item in still_missing)
        )
    else:
        # apply_transition closes the request as answered: the referral leaves needs-info.
        to_status = Status.IN_REVIEW if referral.first_touch_at else Status.SUBMITTED
        summary = "All requested information received; back with intake"
    event = apply_transition(
        referral,
        "answer_info",
        actor,
        expected_version=expected_version,
        to_status=to_status,
        summary=summary,
    )
    if answer.message.strip():
        record_event(
            referral,
            kind="partner_message",
            actor=actor,
            summary=f"{PARTNER_MESSAGE_PREFIX}{answer.message.strip()}",
            partner_visible=True,
        )
    if not still_missing:
        notify_intake(referral, "The referring office sent the missing information")
    return event, still_missing


# --- When the referring office is reminded, and when intake hears it went quiet -----


def reminder_times(request: InfoRequest, calendar: BusinessCalendar) -> list[datetime]:
    return [
        calendar.add_business_minutes(request.requested_at, minutes)
        for minutes in current_app.config["NEEDS_INFO_REMINDER_MINUTES"]
    ]


def escalation_time(request: InfoRequest, calendar: BusinessCalendar) -> datetime:
    minutes = current_app.config["NEEDS_INFO_ESCALATE_MINUTES"]
    return calendar.add_business_minutes(request.requested_at, minutes)


def schedule_follow_ups(request: InfoRequest) -> None:
    """A new request: the first reminder is due after the first interval."""
    request.reminders_sent = 0
    request.next_reminder_at = reminder_times(request, load_calendar(checked=True))[0]
