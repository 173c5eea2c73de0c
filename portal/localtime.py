"""The practice's time zone: times are stored in UTC and shown and entered in local time."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from flask import current_app


def practice_zone() -> ZoneInfo:
    return ZoneInfo(current_app.config["PRACTICE_TIME_ZONE"])


def to_local(moment: datetime) -> datetime:
    return moment.astimezone(practice_zone())


def format_local(moment: datetime | None) -> str:
    """'24 Nov 2026, 15:30 EST'."""
    if moment is None:
        return ""
    return to_local(moment).strftime("%d %b %Y, %H:%M %Z")


def local_to_utc(day: date, clock_time: time) -> datetime:
    """The UTC moment of a wall-clock time at the practice (DST handled by zoneinfo)."""
    return datetime.combine(day, clock_time, tzinfo=practice_zone()).astimezone(UTC)
