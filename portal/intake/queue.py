"""The staff queue: urgent first, then oldest, with filters and reference search."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ScalarSelect, Select, select
from sqlalchemy.orm import selectinload

from portal.clock import utcnow
from portal.models import SETTLED_RANK, Referral, SlaClock, Status, Urgency
from portal.pagination import one_page
from portal.query_args import choice_arg, id_arg, text_arg
from portal.referrals.references import normalise_reference
from portal.sla.clocks import CLOCK_STATES, clock_state_sql

OPEN = "open"
ALL = "all"

SLA_FILTERS = CLOCK_STATES
SEARCH_MAX_LENGTH = 40


def clock_state(now: datetime) -> ScalarSelect[str]:
    """How the referral's open clock stands now: one of SLA_FILTERS, "ok" or NULL.

    A correlated scalar subquery rather than a join or EXISTS, on purpose: neither
    planner can turn it into a join, so the queue is read in order off its index, each
    row probing its one open clock, and reading stops when the page is full. (Given a
    join, PostgreSQL misjudges how many open clocks are overdue, because it cannot know
    that open clocks are the ones with due times, and hashes them all.)
    """
    return (
        select(clock_state_sql(now))
        .where(SlaClock.referral_id == Referral.id, SlaClock.stopped_at.is_(None))
        .scalar_subquery()
    )


@dataclass(frozen=True)
class QueueFilters:
    status: str = OPEN  # "open", "all" or a Status value
    urgency: str = ""
    sla: str = ""  # "", "at_risk", "breached", "paused"
    service_line_id: int | None = None
    partner_id: int | None = None
    search: str = ""

    @classmethod
    def from_request(cls) -> QueueFilters:
        """The filters the request's query string asks for; 400 for any it cannot use."""
        return cls(
            status=choice_arg("status", {OPEN, ALL, *(s.value for s in Status)}, OPEN),
            urgency=choice_arg("urgency", {u.value for u in Urgency}),
            sla=choice_arg("sla", SLA_FILTERS),
            service_line_id=id_arg("service_line"),
            partner_id=id_arg("partner"),
            search=text_arg("q", max_length=SEARCH_MAX_LENGTH),
        )


    def query_args(self) -> dict[str, str | int]:
        """The filters as query parameters (for page links): only what differs from the
        defaults, and nothing the request carried that is not a filter."""
        values = {
            "status": self.status if self.status != OPEN else "",
            "urgency": self.urgency,
            "sla": self.sla,
            "service_line": self.service_line_id or "",
            "partner": self.partner_id or "",
            "q": self.search,
        }
        return {name: value for name, value in values.items() if value}


def queue_statement(filters: QueueFilters) -> Select[tuple[Referral]]:
    statement = (
        select(Referral)
        .options(
            selectinload(Referral.partner),
            selectinload(Referral.service_line),
            selectinload(Referral.active_clock),
            selectinload(Referral.possible_duplicate_of),
        )
        # Urgent open work, routine open work, then settled; oldest first in each.
        # The order of an index: a page is read off it without sorting the desk.
        .order_by(Referral.queue_rank, Referral.submitted_at, Referral.id)
    )
    if filters.search:
        # A reference search ignores the other filters: staff want that one referral.
        return statement.where(Referral.reference == normalise_reference(filters.search))
    if filters.status == OPEN:
        statement = statement.where(Referral.queue_rank < SETTLED_RANK)
    elif filters.status != ALL:
        statement = statement.where(Referral.status == Status(filters.status))
    if filters.urgency:
        statement = statement.where(Referral.urgency == Urgency(filters.urgency))
    if filters.service_line_id:
        statement = statement.where(Referral.service_line_id == filters.service_line_id)
    if filters.partner_id:
        statement = statement.where(Referral.partner_id == filters.partner_id)
    if filters.sla == "paused":
        # Paused clocks are few (needs_info only): start from them, through their index.
        paused = select(SlaClock.referral_id).where(
            SlaClock.stopped_at.is_(None), SlaClock.resumed_at.is_(None)
        )
        statement = statement.where(Referral.id.in_(paused))
    elif filters.sla:
        statement = statement.where(clock_state(utcnow()) == filters.sla)
    return statement


def queue_page(filters: QueueFilters, page: int, size: int) -> tuple[list[Referral], bool]:
    """One page of the queue and whether there is a next one."""
    return one_page(queue_statement(filters), page, size)
