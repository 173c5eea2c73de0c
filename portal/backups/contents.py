"""What a database holds, as a backup's manifest records it and a restore checks it."""

from __future__ import annotations

from sqlalchemy import Connection, column, func, inspect, select, table

SCHEMA_VERSION_TABLE = "alembic_version"


def schema_revision(connection: Connection) -> str | None:
    """The database's Alembic revision (None before the first migration)."""
    if SCHEMA_VERSION_TABLE not in inspect(connection).get_table_names():
        return None
    versions = select(column("version_num")).select_from(table(SCHEMA_VERSION_TABLE))
    revisions = sorted(connection.scalars(versions))
    return ",".join(revisions) or None


def row_counts(connection: Connection) -> dict[str, int]:
    """Rows in each of the database's tables (SQLite's own tables aside)."""
    return {
        name: connection.scalar(select(func.count()).select_from(table(name)))
        for name in sorted(inspect(connection).get_table_names())
    }


def holds_data(counts: dict[str, int]) -> bool:
    """True when any table but the schema's version has a row: a migrated database
    that nobody has used yet is still empty."""
    return any(count for table, count in counts.items() if table != SCHEMA_VERSION_TABLE)
