"""Copying a live SQLite database, and writing a copy back.

The portal runs SQLite in WAL mode: committed pages may still sit in the `-wal` file,
so copying the database file while the portal writes can give a torn copy. SQLite's
online backup API copies the database as one read transaction sees it (in a single
step, so a concurrent write never restarts it), while writers carry on.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from pathlib import Path

from portal.backups.archive import BackupError


def copy_database(source: Path, target: Path) -> None:
    """Copy the live database at `source` into the new file `target`, consistently."""
    if not source.is_file():
        raise BackupError(f"There is no SQLite database at {source}")
    with (
        contextlib.closing(sqlite3.connect(source, timeout=30)) as live,
        contextlib.closing(sqlite3.connect(target)) as copy,
    ):
        live.backup(copy)  # pages=-1: the whole database from one snapshot
        # One self-contained file: no -wal file needed beside it.
        copy.execute("PRAGMA journal_mode=DELETE")


def write_database(copy: Path, target: Path) -> None:
    """Write the database file `copy` into `target` (created, or replaced page by page
    under SQLite's locks, so a process that has it open sees the restored database)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    if not target.exists():
        # Every patient's details: readable by the portal's user only (and so are the
        # -wal and -shm files SQLite makes beside it, which take the file's mode).
        os.close(os.open(target, os.O_CREAT | os.O_WRONLY, 0o600))
    with (
        contextlib.closing(sqlite3.connect(_read_only(copy), uri=True)) as source,
        contextlib.closing(sqlite3.connect(target, timeout=30)) as restored,
    ):
        source.backup(restored)
        restored.execute("PRAGMA journal_mode=WAL")


def integrity_problems(database: Path) -> list[str]:
    """What `PRAGMA integrity_check` and `PRAGMA foreign_key_check` report (empty: none)."""
    with contextlib.closing(sqlite3.connect(database, timeout=30)) as connection:
        problems = [
            row[0] for row in connection.execute("PRAGMA integrity_check") if row[0] != "ok"
        ]
        problems += [
            f"foreign key: row {rowid} of {table} points at a missing {parent}"
            for table, rowid, parent, _ in connection.execute("PRAGMA foreign_key_check")
        ]
    return problems


def _read_only(path: Path) -> str:
    return path.resolve().as_uri() + "?mode=ro"
