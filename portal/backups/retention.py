"""Which archives to keep: the newest of each of the last N days and of the last M ISO
weeks that have one (a week runs Monday to Sunday at the practice).

Periods are counted among those that have a backup, not back from today: a jobs
process that was stopped for a fortnight does not come back and delete every archive
it made before. The newest archive is always kept.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, tzinfo
from pathlib import Path

from portal.backups.archive import archive_time, archives_in

log = logging.getLogger(__name__)


def moments_to_keep(
    moments: Iterable[datetime], *, keep_daily: int, keep_weekly: int, zone: tzinfo
) -> set[datetime]:
    """The moments (archive times) retention keeps."""
    newest_first = sorted(set(moments), reverse=True)
    newest_of_day: dict[object, datetime] = {}
    newest_of_week: dict[object, datetime] = {}
    for moment in newest_first:
        local = moment.astimezone(zone)
        day = local.date()
        week = local.isocalendar()[:2]  # (ISO year, ISO week)
        if day not in newest_of_day and len(newest_of_day) < keep_daily:
            newest_of_day[day] = moment
        if week not in newest_of_week and len(newest_of_week) < keep_weekly:
            newest_of_week[week] = moment
    kept = set(newest_of_day.values()) | set(newest_of_week.values())
    return kept | set(newest_first[:1])


def prune_archives(
    directory: Path, *, keep_daily: int, keep_weekly: int, zone: tzinfo
) -> list[Path]:
    """Delete the archives in `directory` that retention does not keep; return them.
    Only files named like an archive are ever considered."""
    archives = {archive_time(path.name): path for path in archives_in(directory)}
    kept = moments_to_keep(archives, keep_daily=keep_daily, keep_weekly=keep_weekly, zone=zone)
    deleted = []
    for moment, path in sorted(archives.items()):
        if moment not in kept:
            path.unlink()
            deleted.append(path)
            log.info("deleted old backup %s", path.name)
    return deleted
