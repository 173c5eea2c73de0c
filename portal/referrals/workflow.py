"""The status machine's machinery, and the one function every change goes through.

The actions themselves are declared in portal/referrals/actions.py. `apply_transition`
checks an action against them, moves the status, applies the fields the action changes
and the milestones the move reaches, closes an information request the referral
leaves behind (and the patient's unused link, once it leaves accepted), writes the
timeline event and the audit entry, queues the partner
notification and moves the SLA clock: all in the caller's transaction (the caller
commits), always in that order, so no service has to get an order right.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import reduce
from typing import TypeVar

from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from sqlalchemy import select, update

from portal.auditing import record_audit
from portal.clock import utcnow
from portal.extensions import db
from portal.models import (
    CloseReason,
    InfoRequest,
    PatientLink,
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
    # The words on its button, marked with lazy_gettext: read them as `label`.
    marked_label: str
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
    # When the status alone does not decide: why the action does not apply to this
    # referral now (None when it does). The action is then neither offered nor taken.
    guard: Callable[[Referral], str | None] | None = None
    sources: frozenset[Status] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "sources", frozenset(self.moves))

    @property
    def label(self) -> str:
        """The button's words in the language of the page (a str, not a lazy string)."""
        return str(self.marked_label)

    def targets_from(self, status: Status) -> frozenset[Status]:
        target = self.moves[status]
        return target if isinstance(target, frozenset) else frozenset({target})


T = TypeVar("T", bound=Transition)


# Every transition, by action name, as portal/referrals/actions.py declares them.
_DECLARED: dict[str, Transition] = {}


def declare(transition: T) -> T:
    """Add `transition` to the table (once per name)."""
    if transition.action in _DECLARED:
        raise ValueError(f"the action {transition.action!r} is declared twice")
    _DECLARED[transition.action] = transition
    return transition


def transitions() -> Mapping[str, Transition]:
    """Every declared transition by name. The declarations are imported on first use,
    not at the top: they import the services, which import this module."""
    if not _DECLARED:
        import portal.referrals.actions  # noqa: F401
    return _DECLARED


ROLE_NAMES = {
    Role.PARTNER: _l("the referring office"),
    Role.INTAKE: _l("intake staff"),
    Role.CLINICAL: _l("clinical staff"),
    Role.PARTNER_SUCCESS: _l("partner success"),
    Role.ADMIN: _l("admins"),
}


def _either(first: str, second: str) -> str:
    return gettext("%(first)s or %(second)s", first=first, second=second)


def _role_names(roles: frozenset[Role]) -> str:
    """'clinical staff or intake staff', in the page's language."""
    names = sorted(str(ROLE_NAMES[role]) for role in roles)
    return reduce(_either, names) if names else ""


def allowed_actions(referral: Referral, user: User) -> list[Transition]:
    """The actions `user` may take on `referral` now, in table order."""
    return [
        t
        for t in transitions().values()
        if user.role in t.roles
        and referral.status in t.sources
        and (t.guard is None or t.guard(referral) is None)
    ]


def repeated_since(referral: Referral, action: str, actor: User, seen_event: int) -> bool:
    """Whether `actor` has taken `action` on `referral` since the page that sends it was
    loaded (its newest event `seen_event`): a double click, or Back and submit again.
    An action that moves no column (a contact attempt, a note) leaves the version as it
    was, so only its events tell a repeat from a new one."""
    return (
        db.session.scalar(
            select(ReferralEvent.id)
            .where(
                ReferralEvent.referral_id == referral.id,
                ReferralEvent.id > seen_event,
                ReferralEvent.actor_id == actor.id,
                ReferralEvent.kind == action,
            )
            .limit(1)
        )
        is not None
    )


def check_transition(
    referral: Referral, action: str, actor: User | None, expected_version: int | None
) -> Transition:
    """The transition for `action`, or the reason it cannot happen now."""
    transition = transitions().get(action)
    if transition is None:
        raise TransitionRefused(gettext("That action does not exist."))
    if actor is None:
        if not transition.system:
            raise TransitionRefused(gettext("Someone must be signed in to do that."))
    elif actor.role not in transition.roles:
        raise ActionForbidden(
            gettext(
                "Only %(who)s can %(action)s.",
                who=_role_names(transition.roles),
                action=transition.label.lower(),
            )
        )
    if expected_version is not None and expected_version != referral.version:
        raise EditConflict()
    if referral.status not in transition.sources:
        raise TransitionRefused(
            gettext(
                "This referral is %(status)s: “%(action)s” is not possible from there.",
                status=referral.status.label.lower(),
                action=transition.label,
            )
        )
    if transition.guard is not None and (reason := transition.guard(referral)) is not None:
        raise TransitionRefused(reason)
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
    at: datetime | None = None,
    touch: bool = True,
) -> ReferralEvent:
    """Add a timeline event. One the partner sees also marks the referral updated (its
    "last update" and version move on); staff-only bookkeeping such as SLA tags does not,
    so it never shows the partner a change they cannot see. `touch=False`: a notice the
    partner sees that changes nothing (a reminder), so it neither makes their open page
    stale (a conflict on their answer) nor locks the referral row from a job."""
    now = at or utcnow()
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
    if partner_visible and touch:
        referral.updated_at = now
        if actor is not None and actor.is_partner_user:
            mark_seen(actor, referral)  # one's own update is not news
    return event


# The milestones the scorecard and the SLA clocks read: each is set once, the first time
# a transition reaches it. (A first contact that reached the patient is the one milestone
# an action's outcome decides: log_outreach passes it in `changes`.)
TRIAGE_OUTCOMES = frozenset({Status.ACCEPTED, Status.DECLINED, Status.REDIRECTED})


def _milestones_reached(action: str, to_status: Status) -> tuple[str, ...]:
    reached = {
        "first_touch_at": action in ("first_touch", "resume_review"),
        "needs_info_at": to_status is Status.NEEDS_INFO,
        "triaged_at": to_status in TRIAGE_OUTCOMES,
        "scheduled_at": to_status is Status.SCHEDULED,
        "patient_reached_at": to_status is Status.SCHEDULED,
        "outcome_at": to_status.is_final,
    }
    return tuple(name for name, happened in reached.items() if happened)


# Why a referral leaving needs-info closes the request it was waiting on.
CLOSE_REASONS = {"answer_info": CloseReason.ANSWERED, "resume_review": CloseReason.RESUMED}
CLOSED_HEADLINES = {
    CloseReason.RESUMED: "The request for information was closed: intake resumed review without it",
    CloseReason.LEFT: "The request for information was closed: the referral moved on",
}


def close_information_requests(referral: Referral, reason: CloseReason, at: datetime) -> None:
    """Close whatever request is open on `referral` (there is at most one)."""
    db.session.execute(
        update(InfoRequest)
        .where(InfoRequest.referral_id == referral.id, InfoRequest.closed_at.is_(None))
        .values(closed_at=at, close_reason=reason, next_reminder_at=None)
        .execution_options(synchronize_session="fetch")
    )


def revoke_patient_links(referral: Referral, at: datetime) -> None:
    """Revoke the patient's unused links: the times they offer belong to a state the
    referral has left (staff booked by phone, the patient was unreachable...). A locked
    link goes with them, and so does intake's "patient locked out" mark."""
    referral.patient_locked_out_at = None
    db.session.execute(
        update(PatientLink)
        .where(
            PatientLink.referral_id == referral.id,
            PatientLink.revoked_at.is_(None),
            PatientLink.used_at.is_(None),
        )
        .values(revoked_at=at, next_reminder_at=None)
        .execution_options(synchronize_session="fetch")
    )


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
    changes: Mapping[str, object] | None = None,
) -> ReferralEvent:
    """Check and perform `action`: status, changed fields, milestones, the information
    request it leaves, timeline event, audit entry, notification, SLA clock.

    `summary` and `partner_visible` override the declared defaults for actions whose
    headline depends on what happened (a contact attempt that reached the patient);
    `to_status` picks the outcome of an action that has several; `changes` are the
    referral's fields the action sets (an appointment, an assigned provider), applied
    here after the checks and before the clock moves.
    """
    transition = check_transition(referral, action, actor, expected_version)
    from_status = referral.status
    if from_status is Status.NEEDS_INFO:
        # The chase job locks the open request first: take it before any write here.
        db.session.execute(
            select(InfoRequest.id)
            .where(InfoRequest.referral_id == referral.id, InfoRequest.closed_at.is_(None))
            .with_for_update()
        )
    targets = transition.targets_from(from_status)
    if to_status is None:
        if len(targets) != 1:
            raise ValueError(f"{action} from {from_status} needs to_status")
        (to_status,) = targets
    elif to_status not in targets:
        raise ValueError(f"{action} cannot lead from {from_status} to {to_status}")
    now = utcnow()
    referral.status = to_status
    for name, value in (changes or {}).items():
        setattr(referral, name, value)
    for milestone in _milestones_reached(action, to_status):
        if getattr(referral, milestone) is None:
            setattr(referral, milestone, now)
    event = record_event(
        referral,
        kind=action,
        actor=actor,
        summary=summary or transition.summary,
        partner_visible=transition.partner_visible if partner_visible is None else partner_visible,
        staff_note=staff_note,
        from_status=from_status,
        to_status=to_status,
        at=now,
    )
    if from_status is Status.NEEDS_INFO and to_status is not Status.NEEDS_INFO:
        reason = CLOSE_REASONS.get(action, CloseReason.LEFT)
        close_information_requests(referral, reason, now)
        if reason in CLOSED_HEADLINES:
            record_event(
                referral,
                kind="info_request_closed",
                actor=actor,
                summary=CLOSED_HEADLINES[reason],
                partner_visible=True,
                at=now,
            )
    if (
        from_status is Status.ACCEPTED
        and to_status is not Status.ACCEPTED
        and action != "patient_answered"
    ):
        revoke_patient_links(referral, now)
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
