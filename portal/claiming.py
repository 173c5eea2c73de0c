"""Claiming due rows so that concurrent job runners never take the same one.

On PostgreSQL a runner locks the rows it takes with FOR UPDATE SKIP LOCKED and the
others skip them. SQLite has no row locks (SQLAlchemy silently drops the clause), so
there the jobs process holds a single-runner lock instead (`jobs/locking.py`); the
conditional updates each job makes keep a stray second runner harmless anyway.
"""

from __future__ import annotations

from sqlalchemy import Select


def skip_locked(statement: Select) -> Select:
    """`statement` locking the rows it returns, skipping rows another runner holds.

    Only the selected entity's table is locked (FOR UPDATE OF ...): eager-loaded
    relationships are outer joins, which PostgreSQL will not lock.
    """
    entity = statement.column_descriptions[0]["entity"]
    return statement.with_for_update(skip_locked=True, of=entity)
