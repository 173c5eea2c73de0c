"""The status machine, as data, and the one function every change goes through.

`TRANSITIONS` lists each action: the statuses it may start from and where each leads,
the roles that may perform it, and whether the partner sees it. `apply_transition`
checks an action against that table, moves the status, writes the timeline event and
the audit entry, and queues the partner notification, all in the caller's
transaction (the caller commits).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from portal.auditing import record_audit
from portal.clock import utcnow
from portal.extensions import db
from portal.models import (
    OPEN_STATUSES,
    Referral,
    ReferralEvent,
    Role,
    Status,
    User,
)
from portal.notifications.referrals import notify_partner_of_update
from portal.referrals.unread import mark_seen
from portal.sla.clocks import sync_clock


class TransitionRefused(Exception):
    """The action is not allowed now; the message says why, in the user's terms."""


class ActionForbidden(TransitionRefused):
    """The user's role may not take this action at all (403, not a conflict)."""


class EditConflict(Exception):
    """Someone changed the referral since the user loaded it."""


@dataclass(frozen=True)
class Transition:
    action: str
    label: str
    # from status -> to status (the same: no move), or the set of statuses the caller
    # chooses from (an answer that may or may not complete the request).
    moves: Mapping[Status, Status | frozenset[Status]]
    roles: frozenset[Role]
    partner_visible: bool
    # Headline for the timeline and the partner's message.
    summary: str
    notify_partner: bool = False
    # Done by the portal itself on someone's behalf (a patient's answer): no user acts.
    system: bool = False
    sources: frozenset[Status] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", frozenset(self.moves))

    def targets_from(self, status: Status) -> frozenset[Status]:
        target = self.moves[status]
        return target if isinstance(target, frozenset) else frozenset({target})


def _stay(*statuses: Status) -> dict[Status, Status]:
    return {status: status for status in statuses}


S = Status
TRANSITIONS: dict[str, Transition] = {
    t.action: t
    for t in (
        Transition(
            "first_touch",
            "Record first touch",
            {S.SUBMITTED: S.IN_REVIEW, S.NEEDS_INFO: S.NEEDS_INFO},
            frozenset({Role.INTAKE}),
            partner_visible=True,
            summary="Intake has picked up the referral",
        ),
        Transition(
            "resume_review",
            "Information received: back to review",
            {S.NEEDS_INFO: S.IN_REVIEW},
            frozenset({Role.INTAKE}),
            partner_visible=True,
            summary="The missing information was received; review continues",
        ),
        Transition(
            "accept",
            "Accept",
            {S.IN_REVIEW: S.ACCEPTED},
            frozenset({Role.CLINICAL}),
            partner_visible=True,
            summary="Accepted",
            notify_partner=True,
        ),
        Transition(
            "decline",
            "Decline as not eligible",
            {S.IN_REVIEW: S.DECLINED},
            frozenset({Role.CLINICAL}),
            partner_visible=True,
            summary="Declined: not eligible",
            notify_partner=True,
        ),
        Transition(
            "redirect",
            "Redirect",
            {S.IN_REVIEW: S.REDIRECTED},
            frozenset({Role.CLINICAL}),
            partner_visible=True,
            summary="Redirected to another service",
            notify_partner=True,
        ),
        Transition(
            "log_outreach",
            "Log a contact attempt",
            _stay(S.ACCEPTED, S.SCHEDULED, S.NO_SHOW),
            frozenset({Role.INTAKE}),
            partner_visible=False,
            summary="Contact attempt",
        ),
        Transition(
            "schedule",
            "Schedule the first visit",
            {S.ACCEPTED: S.SCHEDULED, S.SCHEDULED: S.SCHEDULED, S.NO_SHOW: S.SCHEDULED},
            frozenset({Role.INTAKE}),
            partner_visible=True,
            summary="First visit scheduled",
            notify_partner=True,
        ),
        Transition(
            "record_completed",
            "Record visit completed",
            {S.SCHEDULED: S.COMPLETED},
            frozenset({Role.INTAKE}),
            partner_visible=True,
            summary="First visit completed: the patient has started care",
            notify_partner=True,
        ),
        Transition(
            "record_no_show",
            "Record no-show",
            {S.SCHEDULED: S.NO_SHOW},
            frozenset({Role.INTAKE}),
            partner_visible=True,
            summary="The patient did not attend the first visit",
        ),
        Transition(
            "mark_unreachable",
            "Mark patient unreachable",
            {S.ACCEPTED: S.UNREACHABLE, S.NO_SHOW: S.UNREACHABLE},
            frozenset({Role.INTAKE}),
            partner_visible=True,
            summary="Closed: we could not reach the patient",
            notify_partner=True,
        ),
        Transition(
            "withdraw",
            "Withdraw the referral",
            {status: S.WITHDRAWN for status in OPEN_STATUSES},
            frozenset({Role.PARTNER}),
            partner_visible=True,
            summary="Withdrawn by the referring office",
        ),
        Transition(
            "request_info",
            "Request missing information",
            {S.SUBMITTED: S.NEEDS_INFO, S.IN_REVIEW: S.NEEDS_INFO, S.NEEDS_INFO: S.NEEDS_INFO},
            frozenset({Role.INTAKE}),
            partner_visible=True,
            summary="More information needed",
            notify_partner=True,
        ),
        Transition(
            "answer_info",
            "Send the missing information",
            {S.NEEDS_INFO: frozenset({S.NEEDS_INFO, S.SUBMITTED, S.IN_REVIEW})},
            frozenset({Role.PARTNER}),
            partner_visible=True,
            summary="Information sent by the referring office",
        ),
        Transition(
            "send_patient_link",
            "Send the patient their next step",
            _stay(S.ACCEPTED),
            frozenset({Role.INTAKE}),
            partner_visible=True,
            summary="We sent the patient a link to confirm their next step",
        ),
        Transition(
            "patient_answered",
            "Patient answered",
            {S.ACCEPTED: frozenset({S.ACCEPTED, S.SCHEDULED, S.WITHDRAWN})},
            frozenset(),
            partner_visible=True,
            summary="Patient confirmed next step",
            system=True,
        ),
        Transition(
            "share_follow_up",
            "Share a follow-up note with the referring office",
            _stay(*Status),
            frozenset({Role.INTAKE, Role.CLINICAL, Role.PARTNER_SUCCESS}),
            partner_visible=True,
            summary="Follow-up note from the care team",
            notify_partner=True,
        ),
        Transition(
            "add_note",
            "Add a staff note",
            _stay(*Status),
            frozenset({Role.INTAKE, Role.CLINICAL, Role.PARTNER_SUCCESS}),
            partner_visible=False,
            summary="Staff note",
        ),
    )
}
del S

ROLE_NAMES = {
    Role.PARTNER: "the referring office",
    Role.INTAKE: "intake staff",
    Role.CLINICAL: "clinical staff",
    Role.PARTNER_SUCCESS: "partner success",
    Role.ADMIN: "admins",
}


def allowed_actions(referral: Referral, user: User) -> list[Transition]:
    """The actions `user` may take on `referral` now, in table order."""
    return [
        t for t in TRANSITIONS.values() if user.role in t.roles and referral.status in t.sources
    ]


def check_transition(
    referral: Referral, action: str, actor: User | None, expected_version: int | None
) -> Transition:
    """The transition for `action`, or the reason it cannot happen now."""
    transition = TRANSITIONS.get(action)
    if transition is None:
        raise TransitionRefused("That action does not exist.")
    if actor is None:
        if not transition.system:
            raise TransitionRefused("Someone must be signed in to do that.")
    elif actor.role not in transition.roles:
        who = " or ".join(sorted(ROLE_NAMES[role] for role in transition.roles))
        raise ActionForbidden(f"Only {who} can {transition.label.lower()}.")
    if expected_version is not None and expected_version != referral.version:
        raise EditConflict()
    if referral.status not in transition.sources:
        raise TransitionRefused(
            f"This referral is {referral.status.label.lower()}: "
            f"“{transition.label}” is not possible from there."
        )
    return transition


def record_event(
    referral: Referral,
    *,
    kind: str,
    actor: User | None,
    summary: str,
    partner_visible: bool,
    staff_note: str = "",
    from_status: Status | None = None,
    to_status: Status | None = None,
) -> ReferralEvent:
    """Add a timeline event. One the partner sees also marks the referral updated (its
    "last update" and version move on); staff-only bookkeeping such as SLA tags does not,
    so it never shows the partner a change they cannot see."""
    now = utcnow()
    event = ReferralEvent(
        referral_id=referral.id,
        at=now,
        actor_id=actor.id if actor else None,
        kind=kind,
        from_status=from_status,
        to_status=to_status,
        partner_visible=partner_visible,
        summary=summary,
        staff_note=staff_note,
    )
    db.session.add(event)
    if to_status is Status.NEEDS_INFO and referral.needs_info_at is None:
        referral.needs_info_at = now  # the milestone behind the incomplete-referral rate
    if partner_visible:
        referral.updated_at = now
        if actor is not None and actor.is_partner_user:
            mark_seen(actor, referral)  # one's own update is not news
    return event


def apply_transition(
    referral: Referral,
    action: str,
    actor: User | None,
    *,
    expected_version: int | None,
    to_status: Status | None = None,
    summary: str | None = None,
    staff_note: str = "",
    partner_visible: bool | None = None,
    notify_partner: bool | None = None,
    message_headline: str | None = None,
) -> ReferralEvent:
    """Check and perform `action`: status, timeline event, audit entry, notification.

    `summary` and `partner_visible` override the table's defaults for actions whose
    headline depends on what happened (a contact attempt that reached the patient);
    `to_status` picks the outcome of an action that has several.
    """
    transition = check_transition(referral, action, actor, expected_version)
    from_status = referral.status
    targets = transition.targets_from(from_status)
    if to_status is None:
        if len(targets) != 1:
            raise ValueError(f"{action} from {from_status} needs to_status")
        (to_status,) = targets
    elif to_status not in targets:
        raise ValueError(f"{action} cannot lead from {from_status} to {to_status}")
    referral.status = to_status
    event = record_event(
        referral,
        kind=action,
        actor=actor,
        summary=summary or transition.summary,
        partner_visible=transition.partner_visible if partner_visible is None else partner_visible,
        staff_note=staff_note,
        from_status=from_status,
        to_status=to_status,
    )
    record_audit(
        f"referral.{action}",
        actor=actor,
        referral=referral,
        from_status=from_status.value,
        to_status=to_status.value,
    )
    notified = transition.notify_partner if notify_partner is None else notify_partner
    outcome = to_status.is_final and notified
    if notified:
        # The message carries the generic headline only, never the event's details.
        notify_partner_of_update(referral, message_headline or transition.summary, outcome=outcome)
    sync_clock(referral, outcome_notified=outcome)
    return event
