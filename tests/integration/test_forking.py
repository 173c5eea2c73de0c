"""gunicorn builds the portal once and forks its workers from it (portal/forking.py):
building opens no database connection, and workers that max_requests keeps replacing
each get a pool of their own and go on answering a signed-in partner."""

from __future__ import annotations

from portal import create_app
from portal.forking import ENGINE, after_fork, before_forking, is_portal
from portal.models import Status
from tests.fixtures.desk import PASSWORD, make_referral
from tests.fixtures.gunicorn import Browser, csrf_token


def test_building_the_portal_opens_no_connection(app):
    built = create_app(DATABASE_URL=app.config["DATABASE_URL"], SECRET_KEY="k" * 32)
    engine = built.extensions[ENGINE]
    assert is_portal(built)
    before_forking(built)  # compiles the templates: still no connection
    assert (engine.pool.checkedin(), engine.pool.checkedout()) == (0, 0)
    pool = engine.pool
    after_fork(built)
    assert engine.pool is not pool


def test_workers_replaced_every_few_requests_keep_serving(app, desk, gunicorn):
    with app.app_context():
        reference = make_referral(desk, Status.ACCEPTED)
    server = gunicorn(GUNICORN_MAX_REQUESTS="4", GUNICORN_MAX_REQUESTS_JITTER="0")
    browser = Browser(server.url)
    browser.wait_until_up(server)
    status, page = browser.open("/sign-in")
    form = {"email": desk.partner_a, "password": PASSWORD, "csrf_token": csrf_token(page)}
    assert browser.open("/sign-in", form)[0] == 302
    for _ in range(24):
        status, page = browser.open(f"/referrals/{reference}")
        assert status == 200 and reference in page
    _stdout, stderr = server.stop()
    # Two workers to start with, and one for every four requests each answered since.
    assert stderr.count("Booting worker") >= 6, stderr
    assert "Traceback" not in stderr
