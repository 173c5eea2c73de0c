"""Clock views for pages: one calendar, and one lookup of the wording, per page."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import Any

from portal.clock import utcnow
from portal.sla.calendar import BusinessCalendar
from portal.sla.display import ClockDescriber, ClockView
from portal.sla.settings_cache import practice_settings

_this_thread = threading.local()


def clock_views(rows: Sequence[Any]) -> dict[int, ClockView]:
    """Referral id -> how its running or paused clock reads now, for the queue's rows
    (each a referral's `id` beside its clock's `ClockTimes`, `stage` None when it has
    no open clock)."""
    if not rows:
        return {}
    describe = ClockDescriber(_kept_calendar(), utcnow())
    return {row.id: describe(row) for row in rows if row.stage is not None}


def _kept_calendar() -> BusinessCalendar:
    """The practice's calendar, kept by this thread while the settings stay the same.

    A calendar remembers the open hours of each day it has worked out, but is not safe
    to share between threads: a fresh one per page worked out again every day between
    now and each clock's due time (hundreds, for a queue of clocks overdue by months).
    """
    settings = practice_settings()
    kept = getattr(_this_thread, "calendar", None)
    if kept is None or kept[0] is not settings:
        kept = _this_thread.calendar = (settings, settings.calendar())
    return kept[1]
