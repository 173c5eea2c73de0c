"""Knowing it is alive: the probes, the jobs heartbeat on staff pages, `db upgrade`."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import text

from portal import create_app
from portal.clock import frozen_at, utcnow
from portal.config import TestConfig
from portal.extensions import db
from portal.health import code_head, record_heartbeat
from portal.models import MessageChannel, MessageStatus, OutboxMessage


def beat(app, ago: timedelta = timedelta(0)) -> None:
    with app.app_context(), frozen_at(utcnow() - ago):
        record_heartbeat()


def test_liveness_needs_nothing_but_the_process(client):
    response = client.get("/healthz")
    assert response.status_code == 200 and response.json == {"status": "ok"}
    assert response.headers["Cache-Control"] == "no-store"


def test_readiness_checks_the_database_the_schema_and_the_jobs(app, client):
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json == {
        "status": "fail",
        "checks": {"database": "ok", "schema": "ok", "jobs": "fail"},
    }
    beat(app)
    ready = client.get("/readyz")
    assert ready.status_code == 200 and ready.json["status"] == "ok"
    assert set(ready.json) == {"status", "checks"}  # nothing else: no versions, no data

    beat(app, ago=timedelta(minutes=6))  # older than JOBS_STALE_MINUTES (5)
    assert client.get("/readyz").json["checks"]["jobs"] == "fail"

    beat(app)
    with app.app_context():
        db.session.execute(text("UPDATE alembic_version SET version_num = 'abc123'"))
        db.session.commit()
    stale_schema = client.get("/readyz")
    assert stale_schema.status_code == 503 and stale_schema.json["checks"]["schema"] == "fail"
    with app.app_context():
        db.session.execute(
            text("UPDATE alembic_version SET version_num = :head"), {"head": code_head()}
        )
        db.session.commit()


def test_readiness_costs_three_statements_and_liveness_none(app, client, count_queries):
    beat(app)
    with count_queries() as counted:
        assert client.get("/readyz").status_code == 200
    assert counted.count <= 3  # SELECT 1, the schema revision, the heartbeat
    with count_queries() as counted:
        assert client.get("/healthz").status_code == 200
    assert counted.count == 0


def test_readiness_fails_without_a_database(tmp_path):
    app = create_app(TestConfig, DATABASE_URL=f"sqlite:///{tmp_path}/missing/portal.db")
    response = app.test_client().get("/readyz")
    assert response.status_code == 503
    assert response.json["checks"] == {"database": "fail", "schema": "fail", "jobs": "fail"}


def test_staff_see_a_red_banner_when_the_jobs_process_has_stopped(app, client_for, desk):
    intake = client_for(desk.intake)
    page = intake.get("/queue").get_data(as_text=True)
    assert "Background jobs have never run" in page and 'role="alert"' in page
    beat(app, ago=timedelta(minutes=12))
    page = intake.get("/queue").get_data(as_text=True)
    assert "Background jobs have not run since" in page
    beat(app)
    assert "Background jobs" not in intake.get("/queue").get_data(as_text=True)
    # Partners are not told about the practice's machinery.
    beat(app, ago=timedelta(hours=1))
    partner = client_for(desk.partner_a).get("/referrals/").get_data(as_text=True)
    assert "Background jobs" not in partner


def test_admins_see_when_the_jobs_last_ran(app, client_for, desk):
    beat(app, ago=timedelta(minutes=2))
    page = client_for(desk.admin).get("/admin/users").get_data(as_text=True)
    assert "Background jobs last ran 2 min ago." in page


def test_db_upgrade_says_what_it_did(tmp_path):
    app = create_app(TestConfig, DATABASE_URL=f"sqlite:///{tmp_path}/portal.db")
    runner = app.test_cli_runner()
    created = runner.invoke(args=["db", "upgrade"])
    assert created.exit_code == 0, created.output
    assert created.output.strip() == f"Created the schema at revision {code_head()}."
    again = runner.invoke(args=["db", "upgrade"])
    assert again.output.strip() == (
        f"The schema is already at revision {code_head()}; nothing to do."
    )
    down = runner.invoke(args=["db", "downgrade", "--", "-1"])
    assert down.exit_code == 0, down.output
    previous = down.output.strip().rsplit(" ", 1)[1].rstrip(".")
    up = runner.invoke(args=["db", "upgrade"])
    assert up.output.strip() == f"Upgraded the schema from revision {previous} to {code_head()}."


def test_admins_see_dead_letters_on_every_page_not_only_undelivered(app, client_for, desk):
    beat(app)
    with app.app_context():
        db.session.add(
            OutboxMessage(
                channel=MessageChannel.EMAIL,
                recipient="x@example.org",
                body="b",
                status=MessageStatus.DEAD,
                attempts=8,
                last_error="SMTP: 550 mailbox unavailable",
            )
        )
        db.session.commit()
    admin = client_for(desk.admin).get("/queue").get_data(as_text=True)
    assert "1 message(s) could not be delivered" in admin and "/admin/outbox" in admin
    # Other staff cannot retry them; the partners never hear of the practice's machinery.
    assert "could not be delivered" not in client_for(desk.intake).get("/queue").get_data(
        as_text=True
    )


def test_staff_are_told_when_messages_have_been_failing_for_half_an_hour(
    app, client_for, desk
):
    beat(app)
    with app.app_context():
        db.session.add(
            OutboxMessage(
                channel=MessageChannel.EMAIL,
                recipient="x@example.org",
                body="b",
                created_at=utcnow() - timedelta(minutes=20),
                last_error="SMTP: ConnectionRefusedError",
                unreachable_tries=12,
            )
        )
        db.session.commit()
    intake = client_for(desk.intake)
    assert "have not gone out yet" not in intake.get("/queue").get_data(as_text=True)
    with frozen_at(utcnow() + timedelta(minutes=11)):
        beat(app)
        page = intake.get("/queue").get_data(as_text=True)
    assert "have not gone out yet" in page and "Tell your administrator" in page
    assert client_for(desk.intake).get("/readyz").status_code == 200  # still serving


def test_one_refused_address_is_not_announced_as_a_provider_outage(
    app, client_for, desk
):
    """The provider is up and took everything else; it refused one mailbox (a 550),
    which is retried for about two hours before it is dead. Every staff page says the
    mail provider is not taking messages and to tell the administrator."""
    from portal.clock import utcnow
    from portal.models import MessageChannel, MessageStatus, OutboxMessage
    from tests.integration.test_health import beat

    beat(app)
    with app.app_context():
        now = utcnow()
        db.session.add_all(
            [
                OutboxMessage(
                    channel=MessageChannel.EMAIL,
                    recipient="gone@example.org",
                    body="b",
                    created_at=now - timedelta(minutes=40),
                    attempts=4,
                    next_attempt_at=now + timedelta(minutes=8),
                    last_error="SMTP: SMTPRecipientsRefused: {'gone@example.org': "
                    "(550, b'no such user')}",
                ),
                OutboxMessage(
                    channel=MessageChannel.EMAIL,
                    recipient="ok@example.org",
                    body="b",
                    created_at=now - timedelta(minutes=1),
                    status=MessageStatus.SENT,
                    attempts=1,
                    sent_at=now,
                ),
            ]
        )
        db.session.commit()
    page = client_for(desk.intake).get("/queue").get_data(as_text=True)
    assert "the mail or text provider is not taking them" not in page
