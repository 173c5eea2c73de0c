"""Backups: taken while referrals pour in, restored into a fresh database, checked.

On PostgreSQL (TEST_DATABASE_URL) each restore goes into a database of its own,
created on the same server with CREATE DATABASE and dropped afterwards.
"""

from __future__ import annotations

import tarfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url

from jobs.runner import build_scheduler
from portal import create_app
from portal.backups.archive import (
    Manifest,
    archives_in,
    describe_file,
    read_manifest,
    write_archive,
)
from portal.clock import frozen_at
from portal.commands import alembic_config, upgrade_database
from portal.config import TestConfig
from portal.extensions import db
from portal.models import JobState, Referral
from tests.fixtures.desk import make_referral


@pytest.fixture
def fresh_database_url(database_template, tmp_path):
    """The URL of a database that does not exist yet (SQLite) or holds nothing at all."""
    if database_template.dialect == "sqlite":
        (tmp_path / "restored").mkdir()
        yield f"sqlite:///{tmp_path / 'restored' / 'portal.db'}"
        return
    server = make_url(database_template.location)
    name = f"{server.database}_restore_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def restored_app(fresh_database_url):
    """The portal on the fresh database (nothing restored into it yet)."""
    app = create_app(TestConfig, DATABASE_URL=fresh_database_url)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def backup(app: Flask, directory: Path) -> Path:
    result = app.test_cli_runner().invoke(args=["backup", "create", "--output", str(directory)])
    assert result.exit_code == 0, result.output
    (archive,) = archives_in(directory)
    return archive


def restore(app: Flask, archive: Path, *options: str):
    return app.test_cli_runner().invoke(args=["backup", "restore", str(archive), *options])


def references(app: Flask) -> set[str]:
    with app.app_context():
        found = set(db.session.scalars(select(Referral.reference)))
        db.session.remove()
        return found


class SubmissionLoad:
    """Offices submitting referrals from several threads, each reference recorded once
    the commit that stored it has returned (the moment the office is told)."""

    def __init__(self, app: Flask, desk, threads: int = 3) -> None:
        self.app, self.desk = app, desk
        self.acknowledged: list[str] = []
        self.failures: list[BaseException] = []
        self.lock = threading.Lock()
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self._submit) for _ in range(threads)]

    def _submit(self) -> None:
        with self.app.app_context():
            while not self.stop.is_set():
                try:
                    reference = make_referral(self.desk)
                except Exception as failure:  # reported by the test, never swallowed
                    self.failures.append(failure)
                    db.session.rollback()
                    continue
                with self.lock:
                    self.acknowledged.append(reference)
            db.session.remove()

    def so_far(self) -> set[str]:
        with self.lock:
            return set(self.acknowledged)

    def wait_for(self, count: int, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while len(self.so_far()) < count:
            assert time.monotonic() < deadline, f"only {len(self.so_far())} submissions"
            assert not self.failures, self.failures
            time.sleep(0.01)

    def __enter__(self) -> SubmissionLoad:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)


def test_a_backup_taken_under_load_restores_every_acknowledged_referral(
    app, desk, restored_app, tmp_path
):
    with SubmissionLoad(app, desk) as load:
        load.wait_for(15)
        acknowledged_before = load.so_far()
        archive = backup(app, tmp_path / "backups")
        # The offices kept submitting while the copy was taken, and after.
        load.wait_for(len(load.so_far()) + 15)
    assert not load.failures, load.failures

    result = restore(restored_app, archive)

    assert result.exit_code == 0, result.output
    assert "row counts equal the manifest's" in result.output
    restored = references(restored_app)
    assert acknowledged_before <= restored
    assert restored <= load.so_far()
    assert len(restored) == read_manifest(archive).row_counts["referral"]
    assert len(load.so_far()) > len(restored)  # the backup is a snapshot, not the end state
    if restored_app.config["DATABASE_URL"].startswith("sqlite"):
        # Every patient's details: the portal's user only.
        path = Path(make_url(restored_app.config["DATABASE_URL"]).database)
        assert path.stat().st_mode & 0o777 == 0o600


def test_the_archive_holds_the_database_and_a_manifest(app, desk, tmp_path):
    with app.app_context():
        make_referral(desk)
    archive = backup(app, tmp_path)

    with tarfile.open(archive) as tar:
        names = tar.getnames()
    manifest = read_manifest(archive)
    with app.app_context(), db.engine.connect() as connection:
        dialect = connection.dialect.name
        head = connection.scalar(text("SELECT version_num FROM alembic_version"))
    assert archive.name.startswith("portal-backup-") and archive.suffix == ".tar"
    assert names == ["manifest.json", manifest.database_file]
    assert manifest.dialect == dialect and manifest.schema_revision == head
    assert manifest.row_counts["referral"] == 1 and manifest.row_counts["partner"] == 2
    assert len(manifest.files[manifest.database_file]["sha256"]) == 64
    assert abs(datetime.now(UTC) - manifest.created) < timedelta(minutes=1)
    assert archive.stat().st_mode & 0o777 == 0o600  # it holds every patient's details


def test_restore_refuses_a_database_that_holds_data_unless_forced(
    app, desk, restored_app, tmp_path
):
    with app.app_context():
        first = make_referral(desk)
    archive = backup(app, tmp_path)
    assert restore(restored_app, archive).exit_code == 0
    with restored_app.app_context():
        # The restored portal takes new referrals (ids, and PostgreSQL's sequences,
        # carry on after the restored rows): it holds data now.
        make_referral(desk)
        db.session.remove()

    refused = restore(restored_app, archive)

    assert refused.exit_code != 0
    assert "is not empty" in refused.output and "--force" in refused.output
    assert len(references(restored_app)) == 2  # untouched

    forced = restore(restored_app, archive, "--force")

    assert forced.exit_code == 0, forced.output
    assert references(restored_app) == {first}


def test_restore_into_a_migrated_but_unused_database_needs_no_force(
    app, desk, restored_app, tmp_path
):
    with app.app_context():
        reference = make_referral(desk)
    archive = backup(app, tmp_path)
    with restored_app.app_context():
        upgrade_database()
        db.session.remove()

    result = restore(restored_app, archive)

    assert result.exit_code == 0, result.output
    assert references(restored_app) == {reference}


def test_a_changed_byte_is_refused_by_its_checksum_before_anything_is_restored(app, desk, tmp_path):
    with app.app_context():
        reference = make_referral(desk)
    archive = backup(app, tmp_path)
    with tarfile.open(archive) as tar:
        member = tar.getmember(read_manifest(archive).database_file)
    with archive.open("r+b") as file:
        file.seek(member.offset_data + member.size // 2)
        byte = file.read(1)
        file.seek(-1, 1)
        file.write(bytes([byte[0] ^ 0x01]))

    result = restore(app, archive, "--force")

    assert result.exit_code != 0
    assert "does not match its checksum" in result.output
    assert "Nothing was restored" in result.output
    assert references(app) == {reference}


def test_restore_refuses_an_archive_of_the_other_kind_of_database(app, tmp_path):
    with app.app_context():
        dialect = db.engine.dialect.name
    other = "postgresql" if dialect == "sqlite" else "sqlite"
    database = tmp_path / "database"
    database.write_bytes(b"not really a database")
    archive = tmp_path / "portal-backup-20261130T031500Z.tar"
    write_archive(
        archive,
        Manifest(
            created_at="2026-11-30T03:15:00Z",
            dialect=other,
            schema_revision="0a5665511104",  # the first migration
            portal_version="0.1.0",
            database_file="database",
            row_counts={},
            files={"database": describe_file(database)},
        ),
        {"database": database},
    )

    result = restore(app, archive, "--force")

    assert result.exit_code != 0
    assert "restore it into the kind of database it came from" in result.output


def test_restoring_an_older_schema_says_to_upgrade_next(app, desk, restored_app, tmp_path):
    from alembic import command

    with app.app_context():
        make_referral(desk)
        # No transaction of ours may stay open: on PostgreSQL, dropping a table that
        # refers to referral waits for every reader of referral.
        db.session.remove()
        config = alembic_config()
        with db.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "-1")
        db.session.remove()
    archive = backup(app, tmp_path)
    with app.app_context():
        upgrade_database()  # back to the models' schema, for the fixture's own checks

    result = restore(restored_app, archive)

    assert result.exit_code == 0, result.output
    assert "older than the code's head" in result.output
    assert "flask --app wsgi db upgrade" in result.output
    upgraded = restored_app.test_cli_runner().invoke(args=["db", "upgrade"])
    assert upgraded.exit_code == 0, upgraded.output
    assert len(references(restored_app)) == 1


def test_backup_list_shows_each_archive_with_its_revision(app, desk, tmp_path):
    with app.app_context():
        make_referral(desk)
    archive = backup(app, tmp_path)
    (tmp_path / "notes.txt").write_text("not an archive")

    result = app.test_cli_runner().invoke(args=["backup", "list", "--directory", str(tmp_path)])

    assert result.exit_code == 0, result.output
    (line,) = result.output.splitlines()
    manifest = read_manifest(archive)
    assert line.startswith(archive.name) and manifest.schema_revision in line
    assert "1 referrals" in line


def test_the_nightly_job_takes_one_backup_a_night_and_keeps_what_retention_says(app, tmp_path):
    app.config.update(
        BACKUP_ENABLED=True, BACKUP_DIR=str(tmp_path), BACKUP_KEEP_DAILY=2, BACKUP_KEEP_WEEKLY=1
    )
    (job,) = [j for j in build_scheduler(app).get_jobs() if j.id == "take_nightly_backup"]

    def run_at(moment: str) -> list[str]:
        with frozen_at(datetime.fromisoformat(moment)):
            job.func()
        return [path.name for path in archives_in(tmp_path)]

    # Practice time (America/New_York, UTC-5 in winter); BACKUP_HOUR is 3.
    first = run_at("2026-11-24T02:00:00-05:00")  # a new install catches up at once
    assert first == ["portal-backup-20261124T070000Z.tar"]
    assert run_at("2026-11-24T02:55:00-05:00") == first  # still last night's
    # Tonight's replaces the catch-up: retention keeps the newest of each day.
    assert run_at("2026-11-24T03:05:00-05:00") == ["portal-backup-20261124T080500Z.tar"]
    assert len(run_at("2026-11-24T23:00:00-05:00")) == 1
    assert len(run_at("2026-11-25T03:05:00-05:00")) == 2

    assert run_at("2026-11-26T03:05:00-05:00") == [
        "portal-backup-20261125T080500Z.tar",
        "portal-backup-20261126T080500Z.tar",
    ]
    with app.app_context():
        state = db.session.get(JobState, "nightly_backup")
        assert state.value == {
            "night": "2026-11-26",
            "archive": "portal-backup-20261126T080500Z.tar",
        }


def test_the_nightly_job_is_off_unless_enabled(app):
    assert "take_nightly_backup" not in {job.id for job in build_scheduler(app).get_jobs()}


def test_on_postgresql_one_jobs_process_at_a_time_takes_the_nights_backup(app, tmp_path):
    from portal.backups.tasks import ADVISORY_LOCK_KEY, take_nightly_backup

    app.config.update(BACKUP_DIR=str(tmp_path))
    with app.app_context():
        if db.engine.dialect.name != "postgresql":
            pytest.skip("SQLite runs a single jobs process (jobs/locking.py)")
        with db.engine.connect() as other_process:
            other_process.execute(text("SELECT pg_advisory_lock(:k)"), {"k": ADVISORY_LOCK_KEY})
            assert take_nightly_backup() is False
            other_process.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": ADVISORY_LOCK_KEY})
            other_process.commit()
        assert archives_in(tmp_path) == []
        assert take_nightly_backup() is True
        assert take_nightly_backup() is False  # once a night
    assert len(archives_in(tmp_path)) == 1
