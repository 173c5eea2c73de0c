"""The business calendar and SLA targets: read once per change, not on every page.

Two apps on one database stand for two gunicorn workers (or a worker and the jobs
process): each keeps its own copy of the settings.
"""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import event, select

from jobs.runner import in_app_context
from jobs.sla import sla_sweep
from portal import create_app
from portal.clock import frozen_at
from portal.config import TestConfig
from portal.extensions import db
from portal.localtime import practice_zone
from portal.models import (
    Holiday,
    Referral,
    ReferralEvent,
    SlaClock,
    SlaStage,
    SlaTarget,
    Status,
    Urgency,
)
from portal.sla import settings_cache
from portal.sla.clocks import load_calendar, target_minutes
from tests.conftest import PortalClient
from tests.fixtures.desk import make_referral

NY = ZoneInfo("America/New_York")
MONDAY_10 = datetime(2026, 11, 23, 10, tzinfo=NY)  # a Monday, 10:00 at the practice
CHRISTMAS = date(2026, 12, 25)
# Chicago, Monday to Saturday 08:00-12:00: four business hours a day.
CHICAGO_HOURS = (
    {"section": "hours", "hours-time_zone": "America/Chicago"}
    | {
        field: value
        for day in range(6)
        for field, value in ((f"hours-opens_{day}", "08:00"), (f"hours-closes_{day}", "12:00"))
    }
    | {"hours-closed_6": "y"}
)
SETTINGS_TABLES = re.compile(r"\bFROM (business_hours|holiday|sla_target)\b")


@pytest.fixture
def second_app(database_url):
    """Another process on the same database: `second_app(SETTINGS_CACHE_SECONDS=30)`."""
    made = []

    def make(**config):
        other = create_app(TestConfig, DATABASE_URL=database_url, **config)
        other.test_client_class = PortalClient
        made.append(other)
        return other

    yield make
    for other in made:
        with other.app_context():
            db.engine.dispose()


def signed_in(app, email: str) -> PortalClient:
    app.test_client_class = PortalClient
    client = app.test_client()
    client.sign_in_directly(email)
    return client


@pytest.fixture
def later(monkeypatch):
    """Move this process's clock for the settings check on by some seconds."""

    def move(seconds: float) -> None:
        now = settings_cache.monotonic()
        monkeypatch.setattr(settings_cache, "monotonic", lambda: now + seconds)

    return move


@contextmanager
def statements_run(app):
    """The SQL statements (text and parameters) run inside the block."""
    with app.app_context():
        engine = db.engine
    seen: list[tuple[str, str]] = []

    def record(_conn, _cursor, statement, parameters, *_rest) -> None:
        seen.append((statement, repr(parameters)))

    event.listen(engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", record)


def settings_reads(seen: list[tuple[str, str]]) -> set[str]:
    """The settings tables read."""
    return {table for statement, _ in seen for table in SETTINGS_TABLES.findall(statement)}


def version_checks(seen: list[tuple[str, str]]) -> list[str]:
    return [statement for statement, parameters in seen if settings_cache.VERSION_ROW in parameters]


def submitted_referral(app, desk) -> str:
    with app.app_context(), frozen_at(MONDAY_10):
        return make_referral(desk)


def test_a_referral_page_reads_the_calendar_only_when_it_changed(app, desk, second_app):
    reference = submitted_referral(app, desk)
    worker = second_app()  # a fresh process: it has read nothing yet
    intake = signed_in(worker, desk.intake)
    with statements_run(worker) as first:
        assert intake.get(f"/referrals/{reference}").status_code == 200
    assert settings_reads(first) == {"business_hours", "holiday", "sla_target"}
    with statements_run(worker) as second:
        assert intake.get(f"/referrals/{reference}").status_code == 200
    assert settings_reads(second) == set(), second
    # Checked on every page in the tests' configuration: one small read of the version.
    assert len(version_checks(second)) == 1
    assert len(second) < len(first)
    worker.config["SETTINGS_CACHE_SECONDS"] = 30
    with statements_run(worker) as warm:
        intake.get(f"/referrals/{reference}")
    with statements_run(worker) as within_interval:
        assert intake.get("/queue").status_code == 200
        assert intake.get(f"/referrals/{reference}").status_code == 200
    assert version_checks(warm) and version_checks(within_interval) == []
    assert settings_reads(within_interval) == set()


def test_another_worker_sees_new_business_hours_within_its_check_interval(
    app, client_for, desk, second_app, later
):
    reference = submitted_referral(app, desk)
    worker = second_app(SETTINGS_CACHE_SECONDS=30)
    elsewhere = signed_in(worker, desk.intake)
    page = f"/referrals/{reference}"
    assert "10:00 AM EST" in elsewhere.get(page).get_data(as_text=True)
    assert client_for(desk.admin).post("/admin/sla", data=CHICAGO_HOURS).status_code == 302
    # The admin's own process shows the change on the very next page.
    assert "9:00 AM CST" in client_for(desk.intake).get(page).get_data(as_text=True)
    # The other worker still has its copy: it only checks every 30 seconds...
    assert "10:00 AM EST" in elsewhere.get(page).get_data(as_text=True)
    later(31)
    # ... and once they have passed, it reads the new hours.
    assert "9:00 AM CST" in elsewhere.get(page).get_data(as_text=True)


def test_the_admin_sees_each_saved_setting_at_once(app, client_for, desk):
    app.config["SETTINGS_CACHE_SECONDS"] = 3600
    admin = client_for(desk.admin)
    page = admin.get("/admin/sla").get_data(as_text=True)
    assert 'value="America/New_York"' in page and 'value="8.00"' in page
    targets = {"section": "targets"} | {
        f"targets-{stage}__{urgency}": "2"
        for stage in ("first_touch", "triage", "next_step", "partner_feedback")
        for urgency in ("urgent", "routine")
    }
    holiday = {"section": "holiday", "holiday-day": "2026-12-25", "holiday-name": "Christmas"}
    for saved in (CHICAGO_HOURS, targets, holiday):
        assert admin.post("/admin/sla", data=saved).status_code == 302
    page = admin.get("/admin/sla").get_data(as_text=True)
    assert 'value="America/Chicago"' in page and 'value="2.00"' in page
    assert 'value="8.00"' not in page and 'value="08:00"' in page
    with app.app_context():
        calendar = load_calendar()
        assert CHRISTMAS in calendar.holidays and calendar.minutes_per_business_day == 240
        assert target_minutes(SlaStage.FIRST_TOUCH, Urgency.ROUTINE) == 120


def test_a_change_made_straight_to_the_rows_is_seen_by_every_process(app, desk, second_app, later):
    app.config["SETTINGS_CACHE_SECONDS"] = 3600
    worker = second_app(SETTINGS_CACHE_SECONDS=30)
    for process in (app, worker):
        with process.app_context():
            assert CHRISTMAS not in load_calendar().holidays
    with app.app_context():
        db.session.add(Holiday(day=CHRISTMAS, name="Christmas Day"))
        db.session.add(
            SlaTarget(stage=SlaStage.TRIAGE, urgency=Urgency.URGENT, business_minutes=90)
        )
        db.session.commit()
        assert CHRISTMAS in load_calendar().holidays
        assert target_minutes(SlaStage.TRIAGE, Urgency.URGENT) == 90
    later(31)
    with worker.app_context():
        assert CHRISTMAS in load_calendar().holidays
        assert target_minutes(SlaStage.TRIAGE, Urgency.URGENT) == 90
    with app.app_context():
        db.session.delete(db.session.scalar(select(Holiday)))
        db.session.commit()
        assert CHRISTMAS not in load_calendar().holidays


def test_a_change_not_yet_committed_stays_in_its_own_transaction(app, desk):
    app.config["SETTINGS_CACHE_SECONDS"] = 3600
    flushed, release = threading.Event(), threading.Event()
    seen_by_the_saver: list[bool] = []

    def save_then_roll_back() -> None:
        with app.app_context():
            db.session.add(Holiday(day=CHRISTMAS, name="Christmas Day"))
            seen_by_the_saver.append(CHRISTMAS in load_calendar().holidays)  # not flushed
            db.session.flush()
            seen_by_the_saver.append(CHRISTMAS in load_calendar().holidays)
            flushed.set()
            release.wait(10)
            db.session.rollback()
            seen_by_the_saver.append(CHRISTMAS in load_calendar().holidays)

    saver = threading.Thread(target=save_then_roll_back)
    saver.start()
    try:
        assert flushed.wait(10)
        with app.app_context():
            assert CHRISTMAS not in load_calendar().holidays
    finally:
        release.set()
        saver.join(10)
    assert seen_by_the_saver == [True, True, False]
    with app.app_context():
        assert CHRISTMAS not in load_calendar().holidays


def test_the_sla_sweep_in_the_jobs_process_uses_the_new_hours(
    app, client_for, desk, second_app, later
):
    jobs = second_app(SETTINGS_CACHE_SECONDS=30)
    submitted_referral(app, desk)  # first touch due Tuesday 10:00 in New York
    with frozen_at(datetime(2026, 11, 23, 16, 30, tzinfo=NY)):  # past 75 % of it
        in_app_context(jobs, sla_sweep)()
        assert client_for(desk.admin).post("/admin/sla", data=CHICAGO_HOURS).status_code == 302
        with app.app_context():
            make_referral(desk)  # after hours in Chicago: due Wednesday at noon
    later(31)
    with frozen_at(datetime(2026, 11, 25, 10, 30, tzinfo=ZoneInfo("America/Chicago"))):
        in_app_context(jobs, sla_sweep)()
    with app.app_context():
        summaries = db.session.scalars(
            select(ReferralEvent.summary)
            .where(ReferralEvent.kind == "sla_at_risk")
            .order_by(ReferralEvent.id)
        ).all()
    assert summaries == [
        "SLA at risk: First touch due Tue, Nov 24, 2026, 10:00 AM EST",
        "SLA at risk: First touch due Wed, Nov 25, 2026, 12:00 PM CST",
    ]
    with jobs.app_context():
        assert load_calendar().minutes_per_business_day == 240


def open_clock_due(reference: str) -> datetime:
    return db.session.scalar(
        select(SlaClock.due_at)
        .join(Referral, Referral.id == SlaClock.referral_id)
        .where(Referral.reference == reference, SlaClock.stopped_at.is_(None))
    )


def test_a_due_time_another_worker_stores_after_a_save_uses_the_new_hours(
    app, client_for, desk, second_app
):
    # A worker with the production check interval, its copy fresh from a page it served.
    worker = second_app(SETTINGS_CACHE_SECONDS=5)
    with worker.app_context():
        assert load_calendar().zone.key == "America/New_York"
    assert client_for(desk.admin).post("/admin/sla", data=CHICAGO_HOURS).status_code == 302
    # "Due times follow them": a referral submitted through the other worker at once.
    with worker.app_context(), frozen_at(MONDAY_10):
        reference = make_referral(desk)
        stored = open_clock_due(reference)
    # Monday 9:00 in Chicago, four business hours a day: eight hours is Wednesday 9:00.
    assert stored == datetime(2026, 11, 25, 9, tzinfo=ZoneInfo("America/Chicago"))


def test_the_admin_page_on_another_worker_shows_the_saved_hours(app, client_for, desk, second_app):
    worker = second_app(SETTINGS_CACHE_SECONDS=3600)
    admin_elsewhere = signed_in(worker, desk.admin)
    assert 'value="America/New_York"' in admin_elsewhere.get("/admin/sla").get_data(as_text=True)
    assert client_for(desk.admin).post("/admin/sla", data=CHICAGO_HOURS).status_code == 302
    # The redirect after saving may land on any worker.
    assert 'value="America/Chicago"' in admin_elsewhere.get("/admin/sla").get_data(as_text=True)


def test_a_slower_read_never_replaces_a_newer_copy(app, client_for, desk, second_app, monkeypatch):
    worker = second_app(SETTINGS_CACHE_SECONDS=30)
    real_read = settings_cache._read
    this_thread = threading.local()
    read_done, release = threading.Event(), threading.Event()

    def read(session):
        settings = real_read(session)
        if getattr(this_thread, "slow", False):
            read_done.set()  # it has the old rows; the admin saves before it stores them
            release.wait(10)
        return settings

    monkeypatch.setattr(settings_cache, "_read", read)
    zones = {}

    def slow_page() -> None:
        this_thread.slow = True
        with worker.app_context():
            zones["slow"] = load_calendar().zone.key

    slow = threading.Thread(target=slow_page)
    slow.start()
    try:
        assert read_done.wait(10)
        assert client_for(desk.admin).post("/admin/sla", data=CHICAGO_HOURS).status_code == 302
        with worker.app_context():
            zones["fast"] = load_calendar(checked=True).zone.key
    finally:
        release.set()
        slow.join(10)
    with worker.app_context():
        zones["next"] = load_calendar().zone.key
    assert zones == {
        "slow": "America/New_York",  # its page began before the save
        "fast": "America/Chicago",
        "next": "America/Chicago",  # not the slower read's older copy
    }


def test_an_appointment_entered_on_another_worker_after_a_save_is_in_the_new_zone(
    app, client_for, desk, second_app
):
    with app.app_context():
        reference = make_referral(desk, Status.ACCEPTED)
        version = db.session.scalar(select(Referral.version).filter_by(reference=reference))
    worker = second_app(SETTINGS_CACHE_SECONDS=3600)
    with worker.app_context():
        assert load_calendar().zone.key == "America/New_York"  # its copy, fresh
    assert client_for(desk.admin).post("/admin/sla", data=CHICAGO_HOURS).status_code == 302
    day = date(2026, 12, 8)
    with frozen_at(MONDAY_10):
        answer = signed_in(worker, desk.intake).post(
            f"/referrals/{reference}/actions/schedule",
            data={
                "version": version,
                "appointment_date": day.isoformat(),
                "appointment_time": "10:00",
                "mode": "video",
            },
        )
    assert answer.status_code == 302
    with app.app_context():
        stored = db.session.scalar(select(Referral.appointment_at).filter_by(reference=reference))
    assert stored == datetime(2026, 12, 8, 10, tzinfo=ZoneInfo("America/Chicago"))


def test_a_request_that_reads_the_settings_checked_shows_their_zone_from_then_on(
    app, client_for, desk, second_app
):
    worker = second_app(SETTINGS_CACHE_SECONDS=3600)
    with worker.app_context():
        load_calendar()
    assert client_for(desk.admin).post("/admin/sla", data=CHICAGO_HOURS).status_code == 302
    with worker.app_context():
        before = practice_zone().key  # this request began with the copy
        checked = load_calendar(checked=True).zone.key
        after = practice_zone().key
    assert (before, checked, after) == ("America/New_York", "America/Chicago", "America/Chicago")
