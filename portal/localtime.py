"""The practice's time zone: times are stored in UTC and shown and entered in local time.

The zone is the admin's business-hours zone once saved (the SLA clocks count in it), and
PRACTICE_TIME_ZONE until then: one zone for clocks, pages, messages and exports.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from zoneinfo import ZoneInfo

from flask import g


def practice_zone(*, checked: bool = False) -> ZoneInfo:
    """The practice's zone, fixed for a request or job run (see portal/sla/settings_cache.py);
    `checked` for a time that will be stored, as there."""
    zone = None if checked else g.get("practice_zone")
    if zone is None:
        from portal.sla.settings_cache import practice_settings  # it imports this module

        zone = g.practice_zone = practice_settings(checked=checked).zone
    return zone


def forget_practice_zone() -> None:
    """After the admin changes the zone, within the same request (the settings cache
    calls it whenever the business hours change)."""
    g.pop("practice_zone", None)


def to_local(moment: datetime) -> datetime:
    return moment.astimezone(practice_zone())


def local_to_utc(day: date, clock_time: time, *, checked: bool = False) -> datetime:
    """The UTC moment of a wall-clock time at the practice (DST handled by zoneinfo);
    `checked` when it will be stored (an appointment), in the zone as saved now."""
    zone = practice_zone(checked=checked)
    return datetime.combine(day, clock_time, tzinfo=zone).astimezone(UTC)
