"""A patient's answer sent twice at once (a double click, a retry on a slow phone): the
first copy records it; the second shows what was recorded, never an error page."""

from __future__ import annotations

import re
import threading

import pytest
from sqlalchemy import func, select

from portal.extensions import db
from portal.models import PatientLink, Status
from portal.patients import routes as patient_routes
from portal.patients import services as patient_services
from tests.fixtures.desk import make_referral
from tests.integration.test_patient_links import DOB, send_link


@pytest.mark.parametrize(
    ("module", "name"),
    [
        # The second copy commits before the first has read the referral: the first
        # finds its transition refused.
        (patient_routes, "record_patient_answer"),
        # ... or after the first has read it: the first's write is stale.
        (patient_services, "apply_transition"),
    ],
)
def test_a_booking_sent_twice_at_once_shows_the_booking(
    app, client, client_for, desk, monkeypatch, module, name
):
    with app.app_context():
        reference = make_referral(desk, Status.ACCEPTED)
    path = send_link(app, client_for(desk.intake), reference, slots=1)
    assert client.post(f"{path}/verify", data=DOB).status_code == 303
    slot = re.search(r'value="(slot-\d+)"', client.get(path).get_data(as_text=True)).group(1)
    answer = {"choice": slot, "contact": "sms"}
    cookie_name = app.config["SESSION_COOKIE_NAME"]
    real = getattr(module, name)
    twin_answered, started = [], []

    def with_a_twin(*args, **kwargs):
        if not started:  # the twin's own request goes straight through
            started.append(True)
            twin = app.test_client()
            twin.set_cookie(cookie_name, client.get_cookie(cookie_name).value)
            copy = threading.Thread(
                target=lambda: twin_answered.append(twin.post(f"{path}/answer", data=answer))
            )
            copy.start()
            copy.join(10)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, with_a_twin)
    app.config["PROPAGATE_EXCEPTIONS"] = False
    first = client.post(f"{path}/answer", data=answer)
    assert twin_answered[0].status_code == 303
    assert first.status_code == 303, first.get_data(as_text=True)[:500]
    done = client.get(first.headers["Location"]).get_data(as_text=True)
    assert "We could not save your answer" not in done
    with app.app_context():
        used = db.session.scalar(select(func.count()).where(PatientLink.used_at.is_not(None)))
    assert used == 1
