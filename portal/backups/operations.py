"""Taking a backup of the configured database, and restoring one into it.

Both run inside an app context, against `DATABASE_URL`: the `flask backup` commands
and the nightly job call them. Neither stops the portal: a backup is taken while it
serves; a restore is meant for a database nobody uses yet (stop the portal and the
jobs process before restoring over one with --force).
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
import time
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from flask import current_app
from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from portal.backups import postgresql, sqlite
from portal.backups.archive import (
    BackupError,
    Manifest,
    archive_name,
    archives_in,
    describe_file,
    extract_verified,
    read_manifest,
    write_archive,
)
from portal.backups.contents import holds_data, row_counts, schema_revision
from portal.clock import utcnow
from portal.extensions import db

DATABASE_FILES = {"sqlite": "database.sqlite3", "postgresql": "database.pgdump"}
DIALECT_NAMES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


@dataclass(frozen=True)
class Backup:
    path: Path
    manifest: Manifest
    seconds: float

    @property
    def size(self) -> int:
        return self.path.stat().st_size


@dataclass(frozen=True)
class Restored:
    archive: Path
    manifest: Manifest
    target: str  # the database, password hidden
    code_head: str
    replaced_rows: int  # rows the database held before (only with force)
    seconds: float


def backup_directory() -> Path:
    """BACKUP_DIR, or `backups` in the instance folder."""
    configured = current_app.config.get("BACKUP_DIR")
    return Path(configured) if configured else Path(current_app.instance_path) / "backups"


def create_backup(directory: Path | None = None) -> Backup:
    """Write one archive of the configured database into `directory` (default:
    BACKUP_DIR), consistent however busy the portal is."""
    started = time.monotonic()
    directory = directory or backup_directory()
    try:
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    except OSError as problem:
        raise BackupError(f"Cannot write backups to {directory}: {problem.strerror}") from None
    engine = db.engine
    dialect = engine.dialect.name
    if dialect not in DATABASE_FILES:
        raise BackupError(f"Backups support SQLite and PostgreSQL, not {dialect}")
    moment = utcnow().replace(microsecond=0)
    target = directory / archive_name(moment)
    if target.exists():
        raise BackupError(f"{target} already exists; try again in a second")
    database_file = DATABASE_FILES[dialect]
    # Work beside the archives (the same disk, never a small /tmp); a crash leaves only
    # a hidden directory, never a file named like an archive.
    with tempfile.TemporaryDirectory(dir=directory, prefix=".portal-backup-") as work:
        copy = Path(work) / database_file
        if dialect == "sqlite":
            sqlite.copy_database(Path(engine.url.database), copy)
            revision, counts = _sqlite_file_contents(copy)
            tools = {"sqlite": sqlite3.sqlite_version}
        else:
            snapshot = postgresql.dump_database(engine, copy)
            revision, counts, tools = snapshot.schema_revision, snapshot.row_counts, snapshot.tools
        if revision is None:
            raise BackupError("The database has no schema yet (run `flask db upgrade`)")
        manifest = Manifest(
            created_at=moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            dialect=dialect,
            schema_revision=revision,
            portal_version=portal_version(),
            database_file=database_file,
            row_counts=counts,
            files={database_file: describe_file(copy)},
            tools=tools,
        )
        partial = Path(work) / target.name
        write_archive(partial, manifest, {database_file: copy})
        if target.exists():
            raise BackupError(f"{target} already exists; try again in a second")
        os.replace(partial, target)  # same directory tree: the archive appears whole
        _sync_directory(directory)
    return Backup(target, manifest, time.monotonic() - started)


def _sqlite_file_contents(path: Path) -> tuple[str | None, dict[str, int]]:
    engine = create_engine(f"sqlite:///{path}", poolclass=NullPool)
    try:
        with engine.connect() as connection:
            return schema_revision(connection), row_counts(connection)
    finally:
        engine.dispose()


def _sync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def portal_version() -> str:
    try:
        return metadata.version("referral-portal")
    except metadata.PackageNotFoundError:
        return "unknown"


def list_backups(directory: Path | None = None) -> list[tuple[Path, Manifest | BackupError]]:
    """Every archive in `directory` (default: BACKUP_DIR), oldest first, with its
    manifest or why it cannot be read."""
    listed: list[tuple[Path, Manifest | BackupError]] = []
    for path in archives_in(directory or backup_directory()):
        try:
            listed.append((path, read_manifest(path)))
        except BackupError as problem:
            listed.append((path, problem))
    return listed


def restore_backup(archive: Path, *, force: bool = False) -> Restored:
    """Restore `archive` into the configured database, which must hold no data unless
    `force`. Checks every checksum before touching the database, and the schema
    revision, integrity and row counts after."""
    started = time.monotonic()
    if not archive.is_file():
        raise BackupError(f"There is no archive at {archive}")
    engine = db.engine
    dialect = engine.dialect.name
    shown_target = engine.url.render_as_string(hide_password=True)
    sqlite_target = Path(engine.url.database) if dialect == "sqlite" else None
    # Extract beside a SQLite target (the same disk); PostgreSQL's dump goes to TMPDIR.
    work_parent = sqlite_target.parent if sqlite_target else None
    if work_parent:
        work_parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=work_parent, prefix=".portal-restore-") as work:
        manifest, files = extract_verified(archive, Path(work))
        if manifest.dialect != dialect:
            raise BackupError(
                f"{archive.name} holds a {DIALECT_NAMES.get(manifest.dialect, manifest.dialect)} "
                f"database and DATABASE_URL points at {DIALECT_NAMES.get(dialect, dialect)}: "
                "restore it into the kind of database it came from."
            )
        code_head = _check_revision_is_known(manifest)
        current = _current_contents(engine, sqlite_target)
        replaced_rows = _check_may_replace(current, manifest, shown_target, force=force)
        engine.dispose()  # no pooled connection of ours in the way
        database = files[manifest.database_file]
        if sqlite_target:
            sqlite.write_database(database, sqlite_target)
        else:
            postgresql.restore_database(database, engine.url, clean=bool(current))
    problems = _check_restored(engine, manifest, sqlite_target)
    if problems:
        raise BackupError(
            f"The database restored from {archive.name} fails its checks:\n  "
            + "\n  ".join(problems)
        )
    return Restored(
        archive, manifest, shown_target, code_head, replaced_rows, time.monotonic() - started
    )


def _check_revision_is_known(manifest: Manifest) -> str:
    """The code's head revision; refuses an archive from a schema this code does not know."""
    from alembic.script import ScriptDirectory

    from portal.commands import alembic_config

    scripts = ScriptDirectory.from_config(alembic_config())
    known = {script.revision for script in scripts.walk_revisions()}
    if not set(manifest.schema_revision.split(",")) <= known:
        raise BackupError(
            f"The backup's schema revision {manifest.schema_revision} is unknown to this "
            f"version of the portal: it was made by portal {manifest.portal_version}. "
            "Restore it with that version (or a later one)."
        )
    return scripts.get_current_head() or ""


def _current_contents(engine, sqlite_target: Path | None) -> dict[str, int]:
    """Rows per table in the target database ({} when it does not exist yet)."""
    if sqlite_target is not None and not sqlite_target.exists():
        return {}
    try:
        with engine.connect() as connection:
            return row_counts(connection)
    except SQLAlchemyError as problem:
        raise BackupError(f"Cannot read the database to restore into: {problem}") from None


def _check_may_replace(
    current: dict[str, int], manifest: Manifest, shown_target: str, *, force: bool
) -> int:
    rows = sum(count for table, count in current.items() if table != "alembic_version")
    if holds_data(current) and not force:
        busiest = sorted(current.items(), key=lambda item: -item[1])[:3]
        raise BackupError(
            f"The database at {shown_target} is not empty ({rows:,} rows: "
            + ", ".join(f"{table} {count:,}" for table, count in busiest)
            + "). Nothing was restored. Restore into an empty database, or add --force "
            "to replace what it holds."
        )
    unknown = sorted(set(current) - set(manifest.row_counts))
    if unknown and manifest.dialect == "postgresql":
        # pg_restore --clean drops only what the dump holds: these would stay behind.
        raise BackupError(
            f"The database at {shown_target} holds tables the backup does not "
            f"({', '.join(unknown)}): restore into an empty database."
        )
    return rows if force else 0


def _check_restored(engine, manifest: Manifest, sqlite_target: Path | None) -> list[str]:
    """What is wrong with the restored database (empty: nothing)."""
    with engine.connect() as connection:
        revision = schema_revision(connection)
        counts = row_counts(connection)
        if sqlite_target is None:
            # pg_restore leaves planner statistics empty; the portal's queries need them.
            connection.execute(text("ANALYZE"))
            connection.commit()
    problems = []
    if revision != manifest.schema_revision:
        problems.append(
            f"schema revision {revision}, but the manifest says {manifest.schema_revision}"
        )
    if sqlite_target is not None:
        problems += sqlite.integrity_problems(sqlite_target)
    problems += [
        f"{table}: {counts.get(table, 'no table')} rows, but the manifest says {expected}"
        for table, expected in sorted(manifest.row_counts.items())
        if counts.get(table) != expected
    ]
    return problems
