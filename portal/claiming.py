"""Claiming due rows so that concurrent job runners never take the same one.

On PostgreSQL a runner locks the row it works on with FOR UPDATE SKIP LOCKED and the
others skip it. SQLite has no row locks (SQLAlchemy silently drops the clause), so
there the jobs process holds a single-runner lock instead (`jobs/locking.py`). Either
way rows are handled in their own transaction (or a small batch of them, see
process_due) and their due condition is checked again under the lock, so a row
handled by someone else meanwhile is simply skipped, and a conflict with a web request
costs one row one retry, not the whole run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm.exc import StaleDataError

from portal.extensions import db

log = logging.getLogger(__name__)
Row = TypeVar("Row")


def skip_locked(statement: Select) -> Select:
    """`statement` locking the rows it returns, skipping rows another runner holds.

    Only the selected entity's table is locked (FOR UPDATE OF ...): eager-loaded
    relationships are outer joins, which PostgreSQL will not lock.
    """
    entity = statement.column_descriptions[0]["entity"]
    return statement.with_for_update(skip_locked=True, of=entity)


def process_due(
    model: type[Row],
    due: ColumnElement[bool],
    order_by: ColumnElement,
    handle: Callable[[Row], object],
    limit: int = 200,
    batch: int = 1,
    options: tuple = (),
) -> int:
    """Run `handle` on each row that is due, `batch` rows per transaction. Returns how
    many were handled.

    Batch only handlers whose every effect is in the database (tagging, queueing a
    message): a batch that meets a conflict is rolled back and redone row by row, which
    would repeat anything done outside it, such as sending an email. `options` are
    loader options for the claimed rows (load what the handler reads up front, and a
    batch's writes go out together when it commits).
    """
    ids = list(db.session.scalars(select(model.id).where(due).order_by(order_by).limit(limit)))
    db.session.commit()
    handled = 0
    for start in range(0, len(ids), batch):
        chunk = ids[start : start + batch]
        if batch == 1:
            handled += _handle_one(model, due, handle, chunk[0])
            continue
        try:
            rows = db.session.scalars(
                skip_locked(
                    select(model)
                    .options(*options)
                    .where(model.id.in_(chunk), due)
                    .order_by(order_by)
                )
            ).all()
            for row in rows:
                handle(row)
            db.session.commit()
            handled += len(rows)
        except StaleDataError:
            db.session.rollback()
            handled += sum(_handle_one(model, due, handle, row_id) for row_id in chunk)
    return handled


def _handle_one(model, due, handle, row_id) -> int:
    row = db.session.scalar(skip_locked(select(model).where(model.id == row_id, due)))
    if row is None:  # another runner has it, or it is no longer due
        db.session.commit()
        return 0
    try:
        handle(row)
        db.session.commit()
        return 1
    except StaleDataError:
        db.session.rollback()
        log.warning("%s %s changed while being handled; retried next run", model.__name__, row_id)
        return 0
