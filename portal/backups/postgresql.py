"""Dumping a live PostgreSQL database with pg_dump, and restoring it with pg_restore.

The manifest's row counts must describe the very snapshot pg_dump reads: a
REPEATABLE READ transaction exports its snapshot, counts rows in it and stays open
while `pg_dump --snapshot` dumps that same snapshot.

The tools get the connection as a libpq URL without the password (the command line is
visible to every user of the machine in `ps`); the password travels in PGPASSWORD.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from glob import glob
from pathlib import Path

from sqlalchemy import Engine, text
from sqlalchemy.engine import URL, make_url

from portal.backups.archive import BackupError
from portal.backups.contents import row_counts, schema_revision

# Debian installs each major version's tools here (and a version-picking wrapper on PATH).
DEBIAN_TOOL_DIRS = "/usr/lib/postgresql/*/bin"
# pg_dump waits this long for a table lock (a migration in progress) before giving up.
LOCK_WAIT_TIMEOUT = "120s"


@dataclass(frozen=True)
class Snapshot:
    schema_revision: str | None
    row_counts: dict[str, int]
    tools: dict[str, str]


def find_tool(name: str) -> str:
    """`pg_dump` or `pg_restore`: on PATH, else the newest under /usr/lib/postgresql."""
    on_path = shutil.which(name)
    if on_path:
        return on_path
    installed = sorted(
        glob(f"{DEBIAN_TOOL_DIRS}/{name}"),
        key=lambda path: [int(part) for part in re.findall(r"\d+", path)],
        reverse=True,
    )
    if installed:
        return installed[0]
    raise BackupError(
        f"{name} was not found on PATH or in {DEBIAN_TOOL_DIRS}: install PostgreSQL's "
        "client tools (Debian: apt-get install postgresql-client), at least the server's "
        "version."
    )


def tool_version(tool: str) -> str:
    return subprocess.run(  # noqa: S603 - our own tool and arguments, no shell
        [tool, "--version"], capture_output=True, text=True, check=True
    ).stdout.strip()


def libpq_connection(url: str | URL) -> tuple[str, dict[str, str]]:
    """A libpq URL without the password, and the environment carrying the password."""
    parsed = make_url(url)
    conninfo = parsed.set(drivername="postgresql", password=None).render_as_string(
        hide_password=False
    )
    environment = {**os.environ, "PGAPPNAME": "portal-backup"}
    if parsed.password:
        environment["PGPASSWORD"] = str(parsed.password)
    return conninfo, environment


def dump_database(engine: Engine, target: Path) -> Snapshot:
    """Dump the database into `target` (custom format) and count its rows, both from one
    snapshot, while the portal keeps writing."""
    pg_dump = find_tool("pg_dump")
    conninfo, environment = libpq_connection(engine.url)
    with engine.connect() as connection:
        connection = connection.execution_options(
            isolation_level="REPEATABLE READ", postgresql_readonly=True
        )
        with connection.begin():
            snapshot_id = connection.scalar(text("SELECT pg_export_snapshot()"))
            revision = schema_revision(connection)
            counts = row_counts(connection)
            # The transaction stays open until pg_dump is done: the snapshot lives as
            # long as it does.
            result = subprocess.run(  # noqa: S603 - no shell; arguments are ours
                [
                    pg_dump,
                    "--format=custom",
                    f"--snapshot={snapshot_id}",
                    f"--lock-wait-timeout={LOCK_WAIT_TIMEOUT}",
                    "--no-password",
                    f"--file={target}",
                    f"--dbname={conninfo}",
                ],
                env=environment,
                capture_output=True,
                text=True,
            )
    if result.returncode != 0:
        raise BackupError(f"pg_dump failed: {result.stderr.strip()}")
    return Snapshot(revision, counts, {"pg_dump": tool_version(pg_dump)})


def restore_database(dump: Path, url: str | URL, *, clean: bool) -> None:
    """Restore `dump` into the database at `url` in one transaction: a failure leaves the
    database as it was. `clean` drops the objects the dump holds first."""
    pg_restore = find_tool("pg_restore")
    conninfo, environment = libpq_connection(url)
    arguments = [
        pg_restore,
        "--no-owner",
        "--no-privileges",
        "--single-transaction",
        "--exit-on-error",
        "--no-password",
        f"--dbname={conninfo}",
    ]
    if clean:
        arguments[1:1] = ["--clean", "--if-exists"]
    result = subprocess.run(  # noqa: S603 - no shell; arguments are ours
        [*arguments, str(dump)], env=environment, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise BackupError(f"pg_restore failed; the database is as it was: {result.stderr.strip()}")
