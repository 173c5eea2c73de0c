"""The SLA sweep: tag clocks at risk and breached, and check that no referral is dark."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import and_, case, exists, select
from sqlalchemy.orm import selectinload

from portal.claiming import process_due
from portal.clock import utcnow
from portal.extensions import db
from portal.formatting import format_moment
from portal.models import (
    SETTLED_RANK,
    InfoRequest,
    JobState,
    Referral,
    Role,
    SlaClock,
    Status,
)
from portal.notifications.outbox import portal_url, queue_email
from portal.referrals.workflow import record_event
from portal.sla.clocks import PAUSED_STATUSES, desired_stage_sql
from portal.sla.retiming import retime_running_clocks

log = logging.getLogger(__name__)

OWNER_MAILBOXES = {
    Role.INTAKE: "INTAKE_TEAM_EMAIL",
    Role.CLINICAL: "CLINICAL_TEAM_EMAIL",
    Role.PARTNER_SUCCESS: "PARTNER_SUCCESS_EMAIL",
}


@dataclass
class Violation:
    reference: str
    problem: str


@dataclass
class SweepReport:
    at_risk: int = 0
    breached: int = 0


def _running():
    return and_(SlaClock.stopped_at.is_(None), SlaClock.resumed_at.is_not(None))


# Tagging writes only to the database (events, queued emails), so it can be batched.
SWEEP_BATCH = 50


def sweep(limit: int = 500) -> SweepReport:
    """Tag what has become at risk or breached since the last run.

    Works from the clocks' stored due times (indexed), so a sweep after downtime
    catches up, and a second sweep finds nothing left to tag.
    """
    retime_running_clocks()  # due times as the calendar says now (a holiday declared)
    now = utcnow()
    report = SweepReport()
    report.at_risk = process_due(
        SlaClock,
        and_(
            _running(),
            SlaClock.at_risk_at <= now,
            SlaClock.at_risk_tagged_at.is_(None),
            SlaClock.due_at > now,
        ),
        SlaClock.at_risk_at,
        lambda clock: _tag_at_risk(clock, now),
        limit,
        batch=SWEEP_BATCH,
        options=(selectinload(SlaClock.referral),),
    )
    report.breached = process_due(
        SlaClock,
        and_(_running(), SlaClock.due_at <= now, SlaClock.breached_at.is_(None)),
        SlaClock.due_at,
        lambda clock: _tag_breach(clock, now),
        limit,
        batch=SWEEP_BATCH,
        options=(selectinload(SlaClock.referral),),
    )
    if report.at_risk or report.breached:
        log.info("SLA sweep: %d at risk, %d breached", report.at_risk, report.breached)
    return report


def check_coverage() -> list[Violation]:
    """Find open referrals nobody is on the clock for, and tell the admins.

    Its own job, less frequent than the sweep: it reads every open referral, while the
    sweep only reads the clocks that have come due.
    """
    violations = find_dark_referrals()
    _alert_admins(violations)
    return violations


def _tag_at_risk(clock: SlaClock, now) -> None:
    clock.at_risk_tagged_at = now
    record_event(
        clock.referral,
        kind="sla_at_risk",
        actor=None,
        summary=f"SLA at risk: {clock.stage.label} due {format_moment(clock.due_at)}",
        partner_visible=False,
    )


def _tag_breach(clock: SlaClock, now) -> None:
    clock.breached_at = clock.due_at
    clock.at_risk_tagged_at = clock.at_risk_tagged_at or now
    referral = clock.referral
    record_event(
        referral,
        kind="sla_breached",
        actor=None,
        summary=f"SLA breached: {clock.stage.label} (owner: {clock.owner_role.label})",
        partner_visible=False,
    )
    queue_email(
        recipient=current_app.config[OWNER_MAILBOXES[clock.owner_role]],
        template="sla_breach",
        referral=referral,
        reference=referral.reference,
        stage=clock.stage.label,
        owner=clock.owner_role.label,
        link=portal_url("referrals.detail", reference=referral.reference),
    )


def find_dark_referrals(limit: int = 100) -> list[Violation]:
    """Open referrals nobody is on the clock for. The whole database, in four queries.

    Every open referral must have exactly the clock its status calls for, owned by a
    role and either running with a due time or (needs_info only) paused while the
    partner follow-ups have a next reminder or escalation.
    """
    active = and_(SlaClock.referral_id == Referral.id, SlaClock.stopped_at.is_(None))
    is_open = Referral.queue_rank < SETTLED_RANK  # the open statuses, read off an index
    problems: list[Violation] = []

    def collect(statement, problem: str) -> None:
        for reference in db.session.scalars(statement.limit(limit)):
            problems.append(Violation(reference, problem))

    collect(
        select(Referral.reference).where(is_open, ~exists().where(active)),
        "open referral with no clock",
    )
    collect(
        select(Referral.reference)
        .join(SlaClock, active)
        .where(
            is_open,
            SlaClock.stage != desired_stage_sql(),
        ),
        "clock for the wrong stage",
    )
    collect(
        select(Referral.reference)
        .join(SlaClock, active)
        .where(
            is_open,
            case(
                (Referral.status.in_(PAUSED_STATUSES), SlaClock.resumed_at.is_not(None)),
                else_=SlaClock.due_at.is_(None),
            ),
        ),
        "clock neither running with a due time nor paused for needs_info",
    )
    followed_up = exists().where(
        InfoRequest.referral_id == Referral.id,
        InfoRequest.closed_at.is_(None),
        (InfoRequest.next_reminder_at.is_not(None)) | (InfoRequest.escalated_at.is_not(None)),
    )
    collect(
        select(Referral.reference).where(Referral.status == Status.NEEDS_INFO, ~followed_up),
        "needs_info with no partner follow-up scheduled",
    )
    return problems


def _alert_admins(violations: list[Violation]) -> None:
    """Email the admins when the set of problems changes (not on every sweep)."""
    current = sorted(f"{v.reference}: {v.problem}" for v in violations)
    state = db.session.get(JobState, "sla_coverage")
    if state is None:
        state = JobState(name="sla_coverage", value={"problems": []}, updated_at=utcnow())
        db.session.add(state)
    if current and current != state.value.get("problems"):
        queue_email(
            recipient=current_app.config["ADMIN_EMAIL"],
            template="sla_coverage",
            problems=current,
            link=portal_url("intake.queue", sla="breached"),
        )
        log.error("SLA coverage: %d referrals with no clock owner or due time", len(current))
    state.value = {"problems": current}
    state.updated_at = utcnow()
    db.session.commit()
