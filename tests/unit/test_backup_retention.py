"""Which backups retention keeps, which files it may delete, and which night is due."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from portal.backups.archive import archive_name, archive_time
from portal.backups.retention import moments_to_keep, prune_archives
from portal.backups.tasks import night_of

PRACTICE = ZoneInfo("America/New_York")


def nightly(first: date, last: date, at: time = time(3)) -> list[datetime]:
    """One backup a night at `at` practice time (UTC moments, across DST)."""
    days = (last - first).days + 1
    return [
        datetime.combine(first + timedelta(days=n), at, tzinfo=PRACTICE).astimezone(UTC)
        for n in range(days)
    ]


def local_days(moments) -> list[str]:
    return [m.astimezone(PRACTICE).strftime("%a %Y-%m-%d %H:%M") for m in sorted(moments)]


def test_a_nightly_series_keeps_7_days_and_the_newest_of_each_of_4_iso_weeks():
    backups = nightly(date(2026, 10, 1), date(2026, 11, 30))  # the 30th is a Monday

    kept = moments_to_keep(backups, keep_daily=7, keep_weekly=4, zone=PRACTICE)

    assert local_days(kept) == [
        "Sun 2026-11-15 03:00",  # week 46
        "Sun 2026-11-22 03:00",  # week 47
        "Tue 2026-11-24 03:00",
        "Wed 2026-11-25 03:00",
        "Thu 2026-11-26 03:00",
        "Fri 2026-11-27 03:00",
        "Sat 2026-11-28 03:00",
        "Sun 2026-11-29 03:00",  # also week 48's newest
        "Mon 2026-11-30 03:00",  # also week 49's newest
    ]


def test_of_several_backups_a_day_the_newest_is_kept():
    night = datetime(2026, 11, 30, 8, 0, tzinfo=UTC)
    before_an_upgrade = datetime(2026, 11, 30, 19, 30, tzinfo=UTC)
    after_it = datetime(2026, 11, 30, 20, 15, tzinfo=UTC)

    kept = moments_to_keep(
        [night, before_an_upgrade, after_it], keep_daily=7, keep_weekly=4, zone=PRACTICE
    )

    assert kept == {after_it}


def test_days_are_the_practices_days_not_utc_days():
    sunday_morning = datetime(2026, 11, 29, 15, 0, tzinfo=UTC)  # 10:00 in New York
    sunday_evening = datetime(2026, 11, 30, 2, 0, tzinfo=UTC)  # 21:00 on Sunday there
    monday = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)

    kept = moments_to_keep(
        [sunday_morning, sunday_evening, monday], keep_daily=2, keep_weekly=0, zone=PRACTICE
    )

    assert kept == {sunday_evening, monday}


def test_a_pause_in_backups_does_not_delete_the_ones_made_before_it():
    """Periods are counted among those with a backup: a jobs process stopped for three
    weeks comes back and keeps the week it had."""
    before_the_pause = nightly(date(2026, 11, 1), date(2026, 11, 7))
    after_it = nightly(date(2026, 11, 30), date(2026, 11, 30))

    kept = moments_to_keep(before_the_pause + after_it, keep_daily=7, keep_weekly=4, zone=PRACTICE)

    assert local_days(kept) == [
        "Sun 2026-11-01 03:00",  # the newest of ISO week 44
        "Mon 2026-11-02 03:00",
        "Tue 2026-11-03 03:00",
        "Wed 2026-11-04 03:00",
        "Thu 2026-11-05 03:00",
        "Fri 2026-11-06 03:00",
        "Sat 2026-11-07 03:00",
        "Mon 2026-11-30 03:00",
    ]


def test_the_newest_backup_is_kept_whatever_the_settings():
    backups = nightly(date(2026, 11, 1), date(2026, 11, 30))

    assert moments_to_keep(backups, keep_daily=0, keep_weekly=0, zone=PRACTICE) == {backups[-1]}
    assert moments_to_keep([], keep_daily=7, keep_weekly=4, zone=PRACTICE) == set()


def test_pruning_deletes_only_archives_retention_does_not_keep(tmp_path):
    names = [archive_name(moment) for moment in nightly(date(2026, 11, 1), date(2026, 11, 30))]
    for name in names:
        (tmp_path / name).write_bytes(b"archive")
    elsewhere = tmp_path.parent / f"{tmp_path.name}-elsewhere.tar"
    elsewhere.write_bytes(b"someone else's file")
    strangers = {
        "notes.txt": "file",
        "portal-backup-20261101T080000Z.tar.gz": "file",  # not our name
        "portal-backup-20261301T080000Z.tar": "file",  # month 13: no date at all
        "portal-backup-20261101T080000Z.tar.partial": "file",
        "old-portal-backup-20261101T080000Z.tar": "file",
        ".portal-backup-k2j4h": "directory",  # a backup in progress
        "portal-backup-20261102T080000Z.tar.d": "directory",
    }
    for name, kind in strangers.items():
        if kind == "file":
            (tmp_path / name).write_text("keep me")
        else:
            (tmp_path / name).mkdir()
    # A link named like an old archive: never followed, never deleted.
    (tmp_path / "portal-backup-20261001T070000Z.tar").symlink_to(elsewhere)

    deleted = prune_archives(tmp_path, keep_daily=7, keep_weekly=4, zone=PRACTICE)

    remaining = {path.name for path in tmp_path.iterdir()}
    assert {path.name for path in deleted} == set(names) - remaining
    assert len(deleted) == 30 - 9
    assert set(strangers) | {"portal-backup-20261001T070000Z.tar"} <= remaining
    assert elsewhere.read_bytes() == b"someone else's file"


def test_archive_names_carry_their_utc_time():
    moment = datetime(2026, 11, 30, 3, 15, tzinfo=PRACTICE)

    name = archive_name(moment)

    assert name == "portal-backup-20261130T081500Z.tar"
    assert archive_time(name) == moment
    assert archive_time("portal-backup-20261130T081500Z.tar.gz") is None


def test_the_nights_backup_is_due_once_the_practice_clock_passes_the_hour():
    def night(local: str) -> date:
        moment = datetime.fromisoformat(local).replace(tzinfo=PRACTICE)
        return night_of(moment, PRACTICE, hour=3)

    assert night("2026-11-30 02:59") == date(2026, 11, 29)
    assert night("2026-11-30 03:00") == date(2026, 11, 30)
    assert night("2026-11-30 23:59") == date(2026, 11, 30)
    # The night the clocks go back (1 November 2026) and forward (14 March 2027).
    assert night("2026-11-01 02:30") == date(2026, 10, 31)
    assert night("2027-03-14 03:30") == date(2027, 3, 14)
