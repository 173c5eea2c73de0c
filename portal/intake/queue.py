"""The staff queue: urgent first, then oldest, with filters and reference search."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Select, and_, case, select
from sqlalchemy.orm import selectinload

from portal.clock import utcnow
from portal.extensions import db
from portal.models import OPEN_STATUSES, Referral, SlaClock, Status, Urgency
from portal.referrals.references import normalise_reference

OPEN = "open"
ALL = "all"

SLA_FILTERS = {
    "at_risk": lambda now: and_(SlaClock.at_risk_at <= now, SlaClock.due_at > now),
    "breached": lambda now: SlaClock.due_at <= now,
    "paused": lambda now: SlaClock.resumed_at.is_(None),
}


@dataclass(frozen=True)
class QueueFilters:
    status: str = OPEN  # "open", "all" or a Status value
    urgency: str = ""
    sla: str = ""  # "", "at_risk", "breached", "paused"
    service_line_id: int | None = None
    partner_id: int | None = None
    search: str = ""

    @classmethod
    def from_args(cls, args) -> QueueFilters:
        status = args.get("status", OPEN)
        if status not in {OPEN, ALL} and status not in {s.value for s in Status}:
            status = OPEN
        urgency = args.get("urgency", "")
        if urgency not in {u.value for u in Urgency}:
            urgency = ""
        sla = args.get("sla", "")
        if sla not in SLA_FILTERS:
            sla = ""
        return cls(
            status=status,
            urgency=urgency,
            sla=sla,
            service_line_id=args.get("service_line", type=int),
            partner_id=args.get("partner", type=int),
            search=args.get("q", "").strip()[:40],
        )


def queue_statement(filters: QueueFilters) -> Select[tuple[Referral]]:
    urgent_first = case((Referral.urgency == Urgency.URGENT, 0), else_=1)
    statement = (
        select(Referral)
        .options(
            selectinload(Referral.partner),
            selectinload(Referral.service_line),
            selectinload(Referral.active_clock),
        )
        .order_by(urgent_first, Referral.submitted_at, Referral.id)
    )
    if filters.search:
        # A reference search ignores the other filters: staff want that one referral.
        return statement.where(Referral.reference == normalise_reference(filters.search))
    if filters.status == OPEN:
        statement = statement.where(Referral.status.in_(OPEN_STATUSES))
    elif filters.status != ALL:
        statement = statement.where(Referral.status == Status(filters.status))
    if filters.urgency:
        statement = statement.where(Referral.urgency == Urgency(filters.urgency))
    if filters.service_line_id:
        statement = statement.where(Referral.service_line_id == filters.service_line_id)
    if filters.partner_id:
        statement = statement.where(Referral.partner_id == filters.partner_id)
    if filters.sla:
        # A join, not EXISTS: the planner can start from the clocks' due-time index.
        statement = statement.join(
            SlaClock,
            and_(SlaClock.referral_id == Referral.id, SlaClock.stopped_at.is_(None)),
        ).where(SLA_FILTERS[filters.sla](utcnow()))
    return statement


def queue_page(filters: QueueFilters, page: int, size: int) -> tuple[list[Referral], bool]:
    """One page of the queue and whether there is a next one."""
    rows = list(
        db.session.scalars(queue_statement(filters).limit(size + 1).offset((page - 1) * size))
    )
    return rows[:size], len(rows) > size
