"""Each page's SQL statements, pinned: the same count with little data and with a lot,
so an N+1 query or one whose count grows with the data fails here. (Before issue 15's
work: the partner referral page ran 20, the staff one 21, the queue 13 (10 before
the queue's own work), the partner list 6, the 304 3.)

Counted on the request alone (the session cookie's user is signed in already). Each
budget lists why every statement is needed. The test configuration re-reads the jobs
heartbeat on every staff page (JOBS_STATUS_CACHE_SECONDS = 0; production caches it),
and the practice settings' version on every page (SETTINGS_CACHE_SECONDS = 0); both
are counted here as in the worst case.
"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from portal.clock import utcnow
from portal.extensions import db
from portal.models import (
    AppointmentMode,
    ContactMethod,
    MessageChannel,
    MessageStatus,
    OutboxMessage,
    OutreachResult,
    Partner,
    Referral,
    Status,
)
from portal.referrals import services
from tests.fixtures.desk import make_referral, user

# page -> (budget, why each statement)
BUDGETS = {
    "partner referral page": (
        11,
        "session and user; the referral with its service line and when this user last saw "
        "it; the audit row (the seen marker is written only when there is news); the "
        "settings version; the timeline events; consents; the open information request; "
        "the running clock; the unread badge; required items; documents",
    ),
    "partner referral page, with news": (
        12,
        "the same, and the seen marker moved forward to what the page shows (one upsert)",
    ),
    "partner list": (
        4,
        "session and user; a page of referrals as the columns shown, with their service "
        "line's name and whether each has news; the unread badge; the settings version",
    ),
    "staff queue": (
        7,
        "session and user; the audit row; a page of rows as the columns shown, with each "
        "one's open clock, earlier duplicate, partner and service line names; the "
        "settings version; the filter lists' service lines and partners; the jobs "
        "heartbeat",
    ),
    "staff referral page": (
        13,
        "session and user; the referral with its service line; the audit row; the "
        "settings version; the timeline events; consents; the open information request; "
        "the latest patient link; the running and breached clocks; the jobs heartbeat; "
        "required items; documents; contact attempts",
    ),
    "timeline fragment": (
        7,
        "what an open page fetches when the 304 found news: session and user; the "
        "version and newest event (the ETag asked about may still be current); the "
        "referral with its service line and when this user last saw it; the timeline "
        "events; the audit row (the seen marker is written only when there is news); the "
        "running clock; the settings version. No unread badge: a fragment has no "
        "navigation",
    ),
    "timeline refresh, nothing new (304)": (
        1,
        "answered before Flask (portal/referrals/timeline_poll.py): the session, its user "
        "and the referral's version and newest event that user sees, in one read",
    ),
}


def pages(reference: str) -> dict[str, tuple[str, str, dict]]:
    return {
        "partner referral page": ("partner", f"/referrals/{reference}", {}),
        "partner list": ("partner", "/referrals/", {}),
        "timeline fragment": ("partner", f"/referrals/{reference}/timeline", {}),
        "staff queue": ("staff", "/queue", {}),
        "staff referral page": ("staff", f"/referrals/{reference}", {}),
    }


# The grown referrals' statuses: every kind of row a list or the queue shows.
STATUSES = [
    Status.SUBMITTED,
    Status.IN_REVIEW,
    Status.ACCEPTED,
    Status.SCHEDULED,
    Status.NEEDS_INFO,
    Status.DECLINED,
    Status.UNREACHABLE,
    Status.WITHDRAWN,
]


def grow(desk, reference: str, referrals: int, events: int) -> None:
    """More referrals for the partner, varied (both service lines, two submitters, every
    status), so a statement per row, per service line or per submitter would show; and
    a longer history on the one measured, seen by staff only and by the partner too."""
    for n in range(referrals):
        status = STATUSES[n % len(STATUSES)]
        args = {"partner_email": desk.partner_a2} if n % 3 == 0 else {}
        if status is not Status.NEEDS_INFO:  # which has a service line of its own
            args["service_line_id"] = desk.sleep_id if n % 2 else desk.cardio_id
        make_referral(desk, status, **args)
    referral = db.session.scalar(select(Referral).filter_by(reference=reference))
    staff = [user(desk.intake), user(desk.clinical)]  # notes by either; the rest intake's
    for n in range(events):
        services.log_outreach(
            referral,
            staff[0],
            expected_version=None,
            channel=ContactMethod.PHONE,
            result=OutreachResult.NO_ANSWER,
            note=f"try {n}",
        )
        services.add_staff_note(referral, staff[n % 2], expected_version=None, note="n")
        # Partner-visible: the visit booked, then moved.
        services.schedule(
            referral,
            staff[0],
            expected_version=None,
            appointment_at=utcnow() + timedelta(days=3 + n),
            mode=AppointmentMode.VIDEO,
        )
    db.session.commit()


@pytest.fixture
def measured(app, desk, client_for, count_queries):
    with app.app_context():
        reference = make_referral(desk, Status.ACCEPTED)
    clients = {"partner": client_for(desk.partner_a), "staff": client_for(desk.intake)}

    def measure() -> tuple[dict[str, int], dict[str, int]]:
        counts, sizes = {}, {}
        for name, (who, path, headers) in pages(reference).items():
            client = clients[who]
            assert client.get(path, headers=headers).status_code == 200  # warm
            with count_queries() as counted:
                response = client.get(path, headers=headers)
            assert response.status_code == 200
            counts[name], sizes[name] = counted.count, len(response.data)
        partner = clients["partner"]
        etag = partner.get(f"/referrals/{reference}/timeline").headers["ETag"]
        with count_queries() as counted:
            response = partner.get(
                f"/referrals/{reference}/timeline", headers={"If-None-Match": etag}
            )
        assert response.status_code == 304
        counts["timeline refresh, nothing new (304)"] = counted.count
        with app.app_context():  # news for the office: the visit moved
            referral = db.session.scalar(select(Referral).filter_by(reference=reference))
            services.schedule(
                referral,
                user(desk.intake),
                expected_version=None,
                appointment_at=utcnow() + timedelta(days=60),
                mode=AppointmentMode.PHONE,
            )
            db.session.commit()
        with count_queries() as counted:
            assert partner.get(f"/referrals/{reference}").status_code == 200
        counts["partner referral page, with news"] = counted.count
        return counts, sizes

    return reference, measure


def test_every_page_keeps_its_statement_budget_whatever_the_data(app, desk, measured):
    reference, measure = measured
    small, small_sizes = measure()
    with app.app_context():
        grow(desk, reference, referrals=30, events=25)
    large, large_sizes = measure()
    # Every page shows the larger data (more rows, a longer timeline): the counts below
    # compare pages that did the work, not pages that had nothing more to read.
    grown = {page for page in small_sizes if large_sizes[page] > small_sizes[page] + 2000}
    assert grown == set(small_sizes), (small_sizes, large_sizes)
    assert large == small, "a statement count grew with the data"
    # Pinned exactly: a page that needs fewer should say so here too.
    assert small == {page: budget for page, (budget, _why) in BUDGETS.items()}


# The admin pages this work added or changed, pinned the same way: the same count with
# a few rows and with many (no statement per partner, user or message).
ADMIN_BUDGETS = {
    # session and user; referral counts per partner; the partners; the jobs heartbeat
    # with the dead letters and the oldest waiting message (one statement)
    "/admin/partners": 4,
    # session and user; the partner; the jobs heartbeat
    "/admin/partners/{partner}/edit": 3,
    # session and user; the pending count; the dead, then the cancelled messages, each
    # with its referral's patient addresses to hide; the settings version (times are
    # shown in the practice's zone); the jobs heartbeat
    "/admin/outbox": 6,
}


def fill_outbox(desk, messages: int, first: int = 0) -> None:
    """Dead and cancelled messages, half of them to patients of referrals of their own,
    and as many more partners."""
    for n in range(first, first + messages):
        reference = make_referral(desk)
        referral = db.session.scalar(select(Referral).filter_by(reference=reference))
        patient = n % 2 == 0
        db.session.add(
            OutboxMessage(
                channel=MessageChannel.EMAIL,
                recipient=referral.patient_email if patient else f"office{n}@alpha.example",
                subject="s",
                body="b",
                referral_id=referral.id,
                status=MessageStatus.DEAD if n % 3 else MessageStatus.CANCELLED,
                attempts=8,
                last_error=f"550 <{referral.patient_email}> refused",
            )
        )
        db.session.add(
            Partner(
                name=f"Office {n}",
                specialty="Primary care",
                referral_contact_name="Contact",
                referral_contact_email=f"contact{n}@office.example",
            )
        )
    db.session.commit()


def test_admin_pages_keep_their_statement_budget_whatever_the_data(
    app, desk, client_for, count_queries
):
    admin = client_for(desk.admin)
    paths = {page: page.format(partner=desk.partner_a_id) for page in ADMIN_BUDGETS}

    def measure() -> dict[str, int]:
        counts = {}
        for page, path in paths.items():
            assert admin.get(path).status_code == 200  # warm
            with count_queries() as counted:
                assert admin.get(path).status_code == 200
            counts[page] = counted.count
        return counts

    with app.app_context():
        fill_outbox(desk, 2)
    small = measure()
    with app.app_context():
        fill_outbox(desk, 30, first=2)
    assert measure() == small, "a statement count grew with the data"
    assert small == ADMIN_BUDGETS
