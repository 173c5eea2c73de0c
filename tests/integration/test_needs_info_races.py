"""The needs-info chase job and the people answering: a reminder sent while the office
writes its answer voids nothing, and neither side meets the other's row locks in the
opposite order (on PostgreSQL that was a deadlock: a 500 and a lost answer)."""

from __future__ import annotations

import io
import re
import threading
import time
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from portal.clock import frozen_at
from portal.extensions import db
from portal.models import OutboxMessage, Referral, Status
from portal.referrals import services, tasks
from tests.fixtures.desk import PDF, make_referral, user

NY = ZoneInfo("America/New_York")
MONDAY_10 = datetime(2026, 11, 23, 10, tzinfo=NY)
# The first reminder falls due four business hours after the request.
BEFORE_REMINDER = MONDAY_10 + timedelta(hours=3, minutes=58)
AFTER_REMINDER = MONDAY_10 + timedelta(hours=4, minutes=1)


def answer_form(page: str) -> dict:
    """The answer form's hidden fields and an answer for every item it asks for."""
    form = re.search(r'action="[^"]*/information"(.*?)</form>', page, re.S).group(1)
    data = {
        name: re.search(rf'name="{name}"[^>]*value="([^"]*)"', form).group(1)
        for name in ("version", "seen_event")
    }
    for tag in re.findall(r"<input[^>]*name=\"item_\d+\"[^>]*>", form):
        name = re.search(r'name="(item_\d+)"', tag).group(1)
        data[name] = (io.BytesIO(PDF), "echo.pdf") if 'type="file"' in tag else "Aspirin 81 mg"
    for name in re.findall(r'<textarea[^>]*name="(item_\d+)"', form):
        data[name] = "Aspirin 81 mg"
    return data


def status_of(app, reference: str) -> Status:
    with app.app_context():
        return db.session.scalar(select(Referral.status).filter_by(reference=reference))


def reminders_queued(app) -> int:
    with app.app_context():
        subjects = db.session.scalars(select(OutboxMessage.subject)).all()
        return sum(subject.startswith("Reminder") for subject in subjects)


def test_a_reminder_sent_while_the_office_answers_voids_nothing(app, client_for, desk):
    with app.app_context(), frozen_at(MONDAY_10):
        reference = make_referral(desk, Status.NEEDS_INFO)
    office = client_for(desk.partner_a)
    with frozen_at(BEFORE_REMINDER):
        page = office.get(f"/referrals/{reference}").get_data(as_text=True)
    with app.app_context(), frozen_at(AFTER_REMINDER):
        assert tasks.chase_incomplete_referrals() == 1
    assert reminders_queued(app) == 1
    # The reminder is on the office's timeline all the same.
    timeline = office.get(f"/referrals/{reference}/timeline").get_data(as_text=True)
    assert "Reminder sent" in timeline
    with frozen_at(AFTER_REMINDER + timedelta(minutes=2)):
        response = office.post(
            f"/referrals/{reference}/information",
            data=answer_form(page),
            content_type="multipart/form-data",
        )
    assert response.status_code == 302, re.findall(r"changed while you[^<]*", response.text)
    assert status_of(app, reference) is Status.SUBMITTED


@pytest.fixture
def chase_job_holding_the_request(app, monkeypatch):
    """Run the chase job in a thread that, once it holds the open request's row, waits
    half a second while queuing its reminder: the moment someone else acts."""
    locked, queue_email = threading.Event(), tasks.queue_email
    outcome: dict = {}

    def slow_queue_email(**kwargs):
        locked.set()
        time.sleep(0.5)
        return queue_email(**kwargs)

    def job():
        with app.app_context(), frozen_at(AFTER_REMINDER):
            try:
                outcome["handled"] = tasks.chase_incomplete_referrals()
            except Exception as error:  # noqa: BLE001 - reported by the test
                outcome["error"] = repr(error)

    monkeypatch.setattr(tasks, "queue_email", slow_queue_email)
    runner = threading.Thread(target=job)

    def start() -> None:
        runner.start()
        assert locked.wait(10)

    def finish() -> dict:
        runner.join(20)
        return outcome

    yield start, finish
    if runner.is_alive():
        runner.join(20)


def test_the_offices_answer_while_the_chase_job_reminds_is_saved(
    app, client_for, desk, chase_job_holding_the_request
):
    start_job, finish_job = chase_job_holding_the_request
    with app.app_context(), frozen_at(MONDAY_10):
        reference = make_referral(desk, Status.NEEDS_INFO)
    office = client_for(desk.partner_a)
    with frozen_at(BEFORE_REMINDER):
        page = office.get(f"/referrals/{reference}").get_data(as_text=True)
    start_job()
    with frozen_at(AFTER_REMINDER):
        response = office.post(
            f"/referrals/{reference}/information",
            data=answer_form(page),
            content_type="multipart/form-data",
        )
    outcome = finish_job()
    assert "error" not in outcome, outcome
    assert response.status_code == 302
    assert status_of(app, reference) is Status.SUBMITTED


def test_intake_leaving_needs_info_while_the_chase_job_reminds_is_saved(
    app, desk, chase_job_holding_the_request
):
    start_job, finish_job = chase_job_holding_the_request
    with app.app_context(), frozen_at(MONDAY_10):
        reference = make_referral(desk, Status.NEEDS_INFO)
    start_job()
    with app.app_context(), frozen_at(AFTER_REMINDER):
        referral = db.session.scalar(select(Referral).filter_by(reference=reference))
        services.resume_review(referral, user(desk.intake), expected_version=None)
        db.session.commit()
    outcome = finish_job()
    assert "error" not in outcome, outcome
    assert status_of(app, reference) is Status.IN_REVIEW
