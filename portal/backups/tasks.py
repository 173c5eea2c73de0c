"""The nightly backup: once a night, after BACKUP_HOUR at the practice, then pruning.

Like every job, it works out from the database whether it is due (the night it last
covered is in `job_state`), so it is safe to run every few minutes and a jobs process
that was down at that hour takes the backup when it comes back. On PostgreSQL several
jobs processes may run; an advisory lock lets one of them take the night's backup.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date, datetime, time, timedelta, tzinfo

from flask import current_app
from sqlalchemy import text

from portal.backups.operations import backup_directory, create_backup
from portal.backups.retention import prune_archives
from portal.clock import utcnow
from portal.extensions import db
from portal.localtime import practice_zone
from portal.models import JobState

log = logging.getLogger(__name__)

STATE_NAME = "nightly_backup"
# pg_try_advisory_lock's key for "taking the nightly backup" (any fixed number unused
# elsewhere; the portal takes no other advisory lock).
ADVISORY_LOCK_KEY = 7_042_026_113


def night_of(moment: datetime, zone: tzinfo, hour: int) -> date:
    """The night whose backup is due at `moment`: today's once the local clock has
    passed `hour`, yesterday's before that."""
    local = moment.astimezone(zone)
    return local.date() if local.time() >= time(hour) else local.date() - timedelta(days=1)


def take_nightly_backup() -> bool:
    """Take tonight's backup if nobody has, then prune old archives. True if it did."""
    config = current_app.config
    with _the_only_backup_runner() as alone:
        if not alone:
            return False
        zone = practice_zone()
        night = night_of(utcnow(), zone, config["BACKUP_HOUR"])
        state = db.session.get(JobState, STATE_NAME)
        if state is not None and state.value.get("night", "") >= night.isoformat():
            db.session.commit()
            return False
        # No transaction of ours stays open while the copy is taken.
        db.session.commit()
        backup = create_backup()
        if state is None:
            state = JobState(name=STATE_NAME, value={}, updated_at=utcnow())
            db.session.add(state)
        state.value = {"night": night.isoformat(), "archive": backup.path.name}
        state.updated_at = utcnow()
        db.session.commit()
        log.info(
            "backup %s written (%d bytes, %.1f s)", backup.path.name, backup.size, backup.seconds
        )
        deleted = prune_archives(
            backup_directory(),
            keep_daily=config["BACKUP_KEEP_DAILY"],
            keep_weekly=config["BACKUP_KEEP_WEEKLY"],
            zone=zone,
        )
        if deleted:
            log.info("retention deleted %d old backups", len(deleted))
        return True


@contextmanager
def _the_only_backup_runner() -> Iterator[bool]:
    """On PostgreSQL, hold a session advisory lock (True) or learn that another jobs
    process holds it (False). SQLite runs a single jobs process already."""
    if db.engine.dialect.name != "postgresql":
        yield True
        return
    with db.engine.connect() as connection:
        alone = connection.scalar(
            text("SELECT pg_try_advisory_lock(:key)"), {"key": ADVISORY_LOCK_KEY}
        )
        connection.commit()  # the lock outlives the transaction; the snapshot need not
        try:
            yield bool(alone)
        finally:
            if alone:
                connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": ADVISORY_LOCK_KEY}
                )
                connection.commit()
