"""The practice's time zone: times are stored in UTC and shown and entered in local time.

The zone is the admin's business-hours zone once saved (the SLA clocks count in it), and
PRACTICE_TIME_ZONE until then: one zone for clocks, pages, messages and exports.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from flask import current_app, g

from portal.extensions import db


def practice_zone() -> ZoneInfo:
    """The practice's zone, read once per request or job run."""
    zone = g.get("practice_zone")
    if zone is None:
        from portal.models import BusinessHours

        row = db.session.get(BusinessHours, 1)
        zone = ZoneInfo(row.time_zone if row else current_app.config["PRACTICE_TIME_ZONE"])
        g.practice_zone = zone
    return zone


def forget_practice_zone() -> None:
    """After the admin changes the zone, within the same request."""
    g.pop("practice_zone", None)


def to_local(moment: datetime) -> datetime:
    return moment.astimezone(practice_zone())


def local_to_utc(day: date, clock_time: time) -> datetime:
    """The UTC moment of a wall-clock time at the practice (DST handled by zoneinfo)."""
    return datetime.combine(day, clock_time, tzinfo=practice_zone()).astimezone(UTC)
