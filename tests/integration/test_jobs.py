"""The jobs process: its scheduler, and that its jobs run inside the app."""

from __future__ import annotations

from sqlalchemy import select, text, update

from jobs.runner import build_scheduler, in_app_context
from portal.extensions import db
from portal.models import MessageStatus, OutboxMessage
from tests.fixtures.desk import make_referral


def test_the_scheduler_has_the_delivery_job(app):
    scheduler = build_scheduler(app)
    assert {job.id for job in scheduler.get_jobs()} >= {"deliver_outbox"}


def test_the_delivery_job_sends_due_messages(app, desk, smtp_sink):
    with app.app_context():
        make_referral(desk)
    job = next(j for j in build_scheduler(app).get_jobs() if j.id == "deliver_outbox")
    job.func()
    assert len(smtp_sink.messages) == 1
    with app.app_context():
        assert db.session.scalar(select(OutboxMessage.status)) is MessageStatus.SENT


def test_the_statistics_job_keeps_the_sqlite_planner_informed(app, desk):
    """A table analysed while empty would be planned as empty forever (full scans)."""
    with app.app_context():
        make_referral(desk)
        job = next(j for j in build_scheduler(app).get_jobs() if j.id == "refresh_statistics")
        job.func()
        if db.engine.dialect.name != "sqlite":
            return  # PostgreSQL's autovacuum analyses by itself; the job does nothing
        analysed = set(db.session.scalars(text("SELECT DISTINCT tbl FROM sqlite_stat1")))
    assert {"referral", "referral_event", "sla_clock"} <= analysed


def test_a_failing_job_is_logged_not_raised(app, caplog):
    def broken() -> None:
        raise RuntimeError("boom")

    in_app_context(app, broken)()
    assert "job broken failed" in caplog.text


def test_a_row_changed_by_someone_else_meanwhile_is_left_for_the_next_run(app, desk):
    from sqlalchemy.orm.exc import StaleDataError

    from portal.claiming import process_due
    from portal.models import Referral

    with app.app_context():
        first, second = make_referral(desk), make_referral(desk)
        seen = []

        def handle(referral):
            seen.append(referral.reference)
            if referral.reference == first:
                raise StaleDataError("a web request changed it first")
            referral.source_code = "HANDLED"

        for batch in (1, 10):  # one transaction per row, or a batch redone row by row
            seen.clear()
            handled = process_due(
                Referral, Referral.source_code.is_(None), Referral.id, handle, batch=batch
            )
            assert handled == 1 and seen.count(second) == 1
            codes = dict(db.session.execute(select(Referral.reference, Referral.source_code)).all())
            assert codes == {first: None, second: "HANDLED"}  # the first is still due
            db.session.execute(update(Referral).values(source_code=None))
            db.session.commit()
