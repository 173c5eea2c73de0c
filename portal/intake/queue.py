"""The staff queue: urgent first, then oldest, with filters and reference search."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import cache
from typing import Any

from sqlalchemy import Label, Row, ScalarSelect, Select, select
from sqlalchemy.orm import aliased, load_only

from portal.clock import utcnow
from portal.models import SETTLED_RANK, Partner, Referral, ServiceLine, SlaClock, Status, Urgency
from portal.pagination import one_page
from portal.query_args import choice_arg, id_arg, text_arg
from portal.referrals.references import normalise_reference
from portal.sla.clocks import CLOCK_STATES, PAUSED_STATUSES, clock_state_sql

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
        # Only the referral is the outer query's: the clock the page joins is not.
        .correlate(Referral)
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


# A queue row: what it shows and nothing more, read as plain columns in one statement
# rather than as four objects per row (loading those cost the page more than its SQL).
# The names are the ones the row's partials read (`version`: the locked-out mark's
# reissue form; `possible_duplicate_of`: the earlier referral, its reference only).
POSSIBLE_DUPLICATE_OF = aliased(Referral, name="possible_duplicate_of")


def _name_of(model: type[Partner] | type[ServiceLine], key: Any, label: str) -> Label[str]:
    # A lookup by primary key per row of the page, planned on its own: PostgreSQL took
    # longer to plan a five-table join than to run it.
    return select(model.name).where(model.id == key).scalar_subquery().label(label)


ROW_COLUMNS = (
    Referral.id,
    Referral.reference,
    Referral.status,
    Referral.urgency,
    Referral.version,
    Referral.patient_first_name,
    Referral.patient_last_name,
    Referral.submitted_at,
    Referral.updated_at,
    Referral.possible_duplicate_of_id,
    Referral.patient_locked_out_at,
    _name_of(Partner, Referral.partner_id, "partner_name"),
    _name_of(ServiceLine, Referral.service_line_id, "service_line_name"),
    # The open clock's, under the names of sla.display.ClockTimes (None: no open clock).
    SlaClock.stage,
    SlaClock.owner_role,
    SlaClock.resumed_at,
    SlaClock.due_at,
    SlaClock.at_risk_at,
    POSSIBLE_DUPLICATE_OF,
)


@cache
def _all_rows() -> Select[Any]:
    """The queue's rows before any filter, in one statement; built once (a statement
    is immutable: each request's filters make a new one from it).

    Each row's open clock and earlier referral (the duplicate mark) are outer-joined:
    one probe of the open-clock index or of a primary key per row. The referral stays
    the first table, so both planners read a page off the queue's index in order and
    stop there.
    """
    return (
        select(*ROW_COLUMNS)
        .select_from(Referral)
        .outerjoin(Referral.active_clock)
        .outerjoin(Referral.possible_duplicate_of.of_type(POSSIBLE_DUPLICATE_OF))
        .options(load_only(POSSIBLE_DUPLICATE_OF.reference, raiseload=True))
        # Urgent open work, routine open work, then settled; oldest first in each.
        # The order of an index: a page is read off it without sorting the desk.
        .order_by(Referral.queue_rank, Referral.submitted_at, Referral.id)
    )


def queue_statement(filters: QueueFilters) -> Select[Any]:
    """The rows the filters ask for, in the queue's order (see `_all_rows`)."""
    statement = _all_rows()
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
        # A clock pauses only while its referral waits in a paused status (needs_info):
        # the status reads just those referrals off their index, in the queue's order,
        # and the joined open clock says which are paused. (Starting from all open
        # clocks, or walking all open referrals, costs as much with none paused.)
        statement = statement.where(
            Referral.status.in_(PAUSED_STATUSES),
            SlaClock.referral_id.is_not(None),
            SlaClock.resumed_at.is_(None),
        )
    elif filters.sla:
        statement = statement.where(clock_state(utcnow()) == filters.sla)
    return statement


def queue_page(filters: QueueFilters, page: int, size: int) -> tuple[list[Row[Any]], bool]:
    """One page of the queue (rows named as in ROW_COLUMNS) and whether there is a next
    one."""
    return one_page(queue_statement(filters), page, size, rows=True)
