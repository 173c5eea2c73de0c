"""The schema comes from Alembic, matches the models, and the demo desk loads."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, inspect, select, text

from portal.commands import alembic_config, upgrade_database
from portal.extensions import db
from portal.models import Base, Partner, Referral, Role, ServiceLine, Status, User


def test_migrations_produce_exactly_the_models_schema(app):
    with app.app_context(), db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        differences = compare_metadata(context, Base.metadata)
    assert differences == []


def test_migrations_downgrade_and_upgrade_again(app):
    from alembic import command

    with app.app_context():
        config = alembic_config()
        with db.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "base")
        assert set(inspect(db.engine).get_table_names()) <= {"alembic_version"}
        upgrade_database()
        assert "referral" in inspect(db.engine).get_table_names()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(app):
    with app.app_context(), db.engine.connect() as connection:
        if connection.dialect.name != "sqlite":
            return
        assert connection.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert connection.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_demo_desk_covers_every_role_and_status(app):
    from portal.demo import DEMO_USERS, demo_already_loaded, load_demo_data

    with app.app_context():
        assert not demo_already_loaded()
        load_demo_data(referral_count=200, seed=7)
        assert demo_already_loaded()
        assert db.session.scalar(select(func.count(Partner.id))) == 3
        assert db.session.scalar(select(func.count(ServiceLine.id))) == 4
        assert db.session.scalar(select(func.count(Referral.id))) == 200
        assert {u.role for u in db.session.scalars(select(User))} == set(Role)
        statuses = set(db.session.scalars(select(Referral.status).distinct()))
        assert statuses == set(Status)
        oldest = db.session.scalar(select(func.min(Referral.submitted_at)))
        newest = db.session.scalar(select(func.max(Referral.submitted_at)))
        assert (newest - oldest).days >= 60
    assert len(DEMO_USERS) == 7


def test_demo_load_command_prints_the_sign_ins(app):
    runner = app.test_cli_runner()
    result = runner.invoke(args=["demo", "load", "--referrals", "20"])
    assert result.exit_code == 0, result.output
    assert "admin@portal.example" in result.output and "Password" not in result.output
    assert "password for all: demo-password-2026" in result.output
    again = runner.invoke(args=["demo", "load"])
    assert "already loaded" in again.output


def test_the_demo_leaves_no_request_open_on_a_referral_past_needs_info(app):
    from portal.demo import load_demo_data
    from portal.models import InfoRequest

    with app.app_context():
        load_demo_data(referral_count=200, seed=7)
        left_open = db.session.scalar(
            select(func.count(InfoRequest.id))
            .join(Referral, Referral.id == InfoRequest.referral_id)
            .where(InfoRequest.closed_at.is_(None), Referral.status != Status.NEEDS_INFO)
        )
        assert left_open == 0


def test_the_migration_closes_requests_left_open_by_earlier_versions(app, desk):
    from alembic import command

    from portal.models import CloseReason, InfoRequest
    from portal.referrals import services
    from tests.fixtures.desk import make_referral, user

    with app.app_context():
        resumed = make_referral(desk, Status.NEEDS_INFO)
        waiting = make_referral(desk, Status.NEEDS_INFO)
        referral = db.session.scalar(select(Referral).filter_by(reference=resumed))
        services.resume_review(referral, user(desk.intake), expected_version=None)
        db.session.commit()
        config = alembic_config()
        with db.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "a9c4e1f7b2d3")
            # What the portal used to leave behind: the request still open.
            connection.execute(text("UPDATE info_request SET closed_at = NULL"))
        upgrade_database()
        db.session.expire_all()
        reasons = {
            reference: db.session.execute(
                select(InfoRequest.closed_at, InfoRequest.close_reason)
                .join(Referral, Referral.id == InfoRequest.referral_id)
                .where(Referral.reference == reference)
            ).one()
            for reference in (resumed, waiting)
        }
    assert reasons[resumed].close_reason is CloseReason.RESUMED
    assert reasons[resumed].closed_at is not None
    assert reasons[waiting].closed_at is None and reasons[waiting].close_reason is None
