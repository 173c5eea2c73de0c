"""Dates of birth sent side by side (a guesser's script, or a patient's retries on a slow
phone): each takes one of the link's tries before it is compared, so none is compared
once the link has locked, and the link locks once."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import select, update

from portal.extensions import db
from portal.models import PatientLink, ReferralEvent, Status
from portal.patients import routes as patient_routes
from tests.fixtures.desk import make_referral
from tests.integration.test_patient_links import DOB, WRONG_DOB, send_link

WRONG_DATES = [{"month": "1", "day": str(day), "year": "1970"} for day in range(13, 19)]


@pytest.fixture
def path(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.ACCEPTED)
    return send_link(app, client_for(desk.intake), reference)


@pytest.fixture
def five_wrong_dates_meanwhile(app, path, monkeypatch):
    """The first date checked waits, past the link's lock check on arrival, while five
    wrong dates from other browsers are answered; the statuses they got."""
    real = patient_routes.check_date_of_birth
    answered: list[int] = []
    started: list[bool] = []

    def others_first(link, given):
        if not started:  # the others' own requests go straight through
            started.append(True)
            for data in WRONG_DATES[:5]:
                other = threading.Thread(
                    target=lambda d=data: answered.append(
                        app.test_client().post(f"{path}/verify", data=d).status_code
                    )
                )
                other.start()
                other.join(10)
        return real(link, given)

    monkeypatch.setattr(patient_routes, "check_date_of_birth", others_first)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    return answered


def _link(app) -> PatientLink:
    with app.app_context():
        link = db.session.scalar(select(PatientLink))
        db.session.expunge(link)
        return link


def test_a_right_date_that_arrived_before_the_lock_is_not_checked_after_it(
    app, client, path, five_wrong_dates_meanwhile
):
    response = client.post(f"{path}/verify", data=DOB)
    assert sorted(five_wrong_dates_meanwhile) == [410, 422, 422, 422, 422]
    # Had it been compared, 303 against 422 would tell a guesser the date of birth.
    assert response.status_code == 410
    assert "This link is locked" in response.get_data(as_text=True)
    link = _link(app)
    assert link.locked_at is not None and link.failed_attempts == 5


def test_a_wrong_date_that_arrived_before_the_lock_does_not_lock_it_again(
    app, client, path, five_wrong_dates_meanwhile
):
    response = client.post(f"{path}/verify", data=WRONG_DATES[5])
    assert response.status_code == 410  # not a 500 from writing a stale referral
    assert _link(app).failed_attempts == 5
    with app.app_context():
        kinds = db.session.scalars(select(ReferralEvent.kind)).all()
    assert kinds.count("patient_link_locked") == 1


def test_a_date_sent_while_the_last_tries_are_checked_is_asked_to_wait(app, client, path):
    with app.app_context():
        # Five tries taken and not yet answered: the link has not locked, yet.
        db.session.execute(update(PatientLink).values(failed_attempts=5))
        db.session.commit()
    response = client.post(f"{path}/verify", data=DOB)
    assert response.status_code == 429
    assert "Please wait a moment" in response.get_data(as_text=True)
    link = _link(app)
    assert link.failed_attempts == 5 and link.locked_at is None


def test_a_right_date_does_not_use_up_a_try(app, client, path):
    assert client.post(f"{path}/verify", data=WRONG_DOB).status_code == 422
    assert client.post(f"{path}/verify", data=DOB).status_code == 303
    assert _link(app).failed_attempts == 1
