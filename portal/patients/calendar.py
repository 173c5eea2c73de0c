"""A calendar file (iCalendar, RFC 5545) for a booked visit.

The file names the practice and the kind of visit, never the patient: it is handed to
whatever calendar the patient uses and may be forwarded or synced anywhere.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from icalendar import Alarm, Calendar, Event, Timezone, vCalAddress

from portal.clock import utcnow

CALENDAR_FILENAME = "visit.ics"
CALENDAR_CONTENT_TYPE = "text/calendar; charset=utf-8; method=PUBLISH"

# The VTIMEZONE covers a year either side of the visit: a full daylight-saving cycle
# for clients that turn it into rules, without the library's 1970-2038 default.
TIMEZONE_MARGIN = timedelta(days=366)
REMINDER_BEFORE = timedelta(hours=1)


def _written(moment: datetime, zone: ZoneInfo) -> datetime:
    """The moment in the practice's zone, or in UTC when the local time is ambiguous
    (the hour repeated when clocks go back): a TZID time cannot say which of the two."""
    local = moment.astimezone(zone)
    if local.replace(fold=0).utcoffset() != local.replace(fold=1).utcoffset():
        return moment.astimezone(UTC)
    return local


def visit_calendar(
    *,
    uid: str,
    starts_at: datetime,
    minutes: int,
    zone: ZoneInfo,
    summary: str,
    description: str,
    organizer_name: str,
    organizer_email: str,
    method: str = "PUBLISH",
) -> bytes:
    """One VEVENT .ics for a booked visit, in the practice's time zone.

    `starts_at` is an aware datetime (UTC in the portal); DTSTART and DTEND are
    written with the zone's TZID and the matching VTIMEZONE, so every calendar shows
    the practice's local time. `uid` must stay the same for the same booking, so that
    importing the file again updates the event instead of adding a second one.
    `summary` and `description` arrive translated; no attendee, no patient data.
    The organizer is the practice (RFC 5546 wants one on a PUBLISH; it is an address).
    """
    if starts_at.tzinfo is None:
        raise ValueError("starts_at must be timezone-aware")
    if minutes <= 0:
        raise ValueError("a visit lasts at least a minute")
    start = starts_at.astimezone(zone)
    event = Event.new(
        uid=uid,
        stamp=utcnow(),
        start=_written(starts_at, zone),
        # On the UTC timeline: a visit across a clock change still lasts `minutes`.
        end=_written(starts_at + timedelta(minutes=minutes), zone),
        summary=summary,
        description=description,
        organizer=vCalAddress.new(organizer_email, cn=organizer_name),
    )
    event.add("STATUS", "CONFIRMED")
    reminder = Alarm()
    reminder.add("ACTION", "DISPLAY")
    reminder.add("DESCRIPTION", summary)
    reminder.TRIGGER = -REMINDER_BEFORE
    event.add_component(reminder)

    calendar = Calendar()
    calendar.add("PRODID", f"-//{organizer_name}//Referral portal//EN")
    calendar.add("VERSION", "2.0")
    calendar.add("CALSCALE", "GREGORIAN")
    calendar.add("METHOD", method)
    calendar.add_component(
        Timezone.from_tzid(
            zone.key,
            first_date=start.date() - TIMEZONE_MARGIN,
            last_date=start.date() + TIMEZONE_MARGIN,
        )
    )
    calendar.add_component(event)
    return calendar.to_ical()
