"""Claiming due rows so that concurrent job runners never take the same one.

On PostgreSQL a runner locks the rows it takes with FOR UPDATE SKIP LOCKED and the
others skip them. SQLite has no row locks (SQLAlchemy silently drops the clause), so
there the jobs process holds a single-runner lock instead (`jobs/locking.py`); the
conditional updates each job makes keep a stray second runner harmless anyway.
"""

from __future__ import annotations

from sqlalchemy import Select


def skip_locked(statement: Select) -> Select:
    """`statement` locking the rows it returns, skipping rows another runner holds."""
    return statement.with_for_update(skip_locked=True)
