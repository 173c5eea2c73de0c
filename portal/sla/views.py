"""Clock views for pages: one calendar load per page, not per row."""

from __future__ import annotations

from portal.clock import utcnow
from portal.models import Referral
from portal.sla.clocks import load_calendar
from portal.sla.display import ClockView, describe_clock


def clock_views(referrals: list[Referral]) -> dict[int, ClockView]:
    """Referral id -> how its running or paused clock reads now."""
    if not referrals:
        return {}
    calendar, now = load_calendar(), utcnow()
    return {
        r.id: describe_clock(r.active_clock, calendar, now)
        for r in referrals
        if r.active_clock is not None
    }
