"""The visit's calendar file: the practice's local time, its time zone, no patient."""

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from icalendar import Calendar

from portal.clock import frozen_at
from portal.patients.calendar import visit_calendar

NEW_YORK = ZoneInfo("America/New_York")


def build(starts_at: datetime, minutes: int = 30, zone: ZoneInfo = NEW_YORK) -> bytes:
    return visit_calendar(
        uid="visit-41@portal.example",
        starts_at=starts_at,
        minutes=minutes,
        zone=zone,
        summary="Video visit with Northwind Telehealth",
        description="Join from the link in your confirmation email; the clinician calls you.",
        organizer_name="Northwind Telehealth",
        organizer_email="referrals@example.org",
    )


def the_event(ics: bytes):
    (event,) = Calendar.from_ical(ics).events
    return event


def test_the_visit_is_written_in_the_practice_time_zone():
    starts_at = datetime(2026, 12, 1, 19, 30, tzinfo=UTC)
    event = the_event(build(starts_at))
    start = event.start
    assert (start.hour, start.minute) == (14, 30)  # 2:30 PM in New York
    assert getattr(start.tzinfo, "key", None) == "America/New_York"
    assert start.utcoffset() == timedelta(hours=-5)  # EST
    assert start == starts_at  # the same instant
    assert event.end - event.start == timedelta(minutes=30)
    assert event.end == starts_at + timedelta(minutes=30)


def test_the_file_carries_the_time_zone_it_names():
    ics = build(datetime(2026, 12, 1, 19, 30, tzinfo=UTC))
    calendar = Calendar.from_ical(ics)
    assert [timezone.tz_name for timezone in calendar.timezones] == ["America/New_York"]
    assert calendar.get_missing_tzids() == set()
    assert b"DTSTART;TZID=America/New_York:20261201T143000\r\n" in ics
    assert b"DTEND;TZID=America/New_York:20261201T150000\r\n" in ics


def test_a_summer_visit_is_in_daylight_time():
    starts_at = datetime(2026, 7, 15, 18, 0, tzinfo=UTC)
    event = the_event(build(starts_at, minutes=45))
    assert (event.start.hour, event.start.minute) == (14, 0)
    assert event.start.utcoffset() == timedelta(hours=-4)  # EDT
    assert event.start == starts_at
    assert event.end == starts_at + timedelta(minutes=45)


def test_another_practice_zone_is_honoured():
    starts_at = datetime(2026, 12, 1, 19, 30, tzinfo=UTC)
    event = the_event(build(starts_at, zone=ZoneInfo("America/Los_Angeles")))
    assert (event.start.hour, event.start.minute) == (11, 30)
    assert event.start == starts_at


def test_the_file_names_the_practice_and_the_visit_but_no_patient():
    with frozen_at(datetime(2026, 11, 30, 15, 0, tzinfo=UTC)):
        ics = build(datetime(2026, 12, 1, 19, 30, tzinfo=UTC))
    calendar = Calendar.from_ical(ics)
    assert str(calendar["VERSION"]) == "2.0"
    assert str(calendar["PRODID"]) == "-//Northwind Telehealth//Referral portal//EN"
    assert str(calendar["METHOD"]) == "PUBLISH"
    event = the_event(ics)
    assert event.uid == "visit-41@portal.example"
    assert event.summary == "Video visit with Northwind Telehealth"
    assert event.description == (
        "Join from the link in your confirmation email; the clinician calls you."
    )
    assert event.stamp == datetime(2026, 11, 30, 15, 0, tzinfo=UTC)
    assert b"DTSTAMP:20261130T150000Z\r\n" in ics
    assert event.organizer.name == "Northwind Telehealth"
    assert event.organizer.email == "referrals@example.org"
    assert b"ATTENDEE" not in ics
    assert ics.endswith(b"END:VCALENDAR\r\n") and b"\n" not in ics.replace(b"\r\n", b"")


def test_the_same_booking_gives_the_same_uid_and_times():
    starts_at = datetime(2026, 12, 1, 19, 30, tzinfo=UTC)
    with frozen_at(datetime(2026, 11, 30, 15, 0, tzinfo=UTC)):
        assert build(starts_at) == build(starts_at)


def test_a_reminder_comes_an_hour_before():
    (alarm,) = the_event(build(datetime(2026, 12, 1, 19, 30, tzinfo=UTC))).walk("VALARM")
    assert str(alarm["ACTION"]) == "DISPLAY"
    trigger = alarm.TRIGGER
    assert trigger == timedelta(hours=-1)
    assert alarm["DESCRIPTION"] == "Video visit with Northwind Telehealth"


def test_a_naive_start_is_refused():
    with pytest.raises(ValueError, match="aware"):
        build(datetime(2026, 12, 1, 19, 30))


def test_a_visit_across_the_clock_change_lasts_its_minutes():
    # 1:30 AM EDT on 1 Nov 2026; clocks go back at 2 AM: an hour's visit ends 1:30 AM EST.
    starts = datetime(2026, 11, 1, 5, 30, tzinfo=UTC)
    ics = visit_calendar(
        uid="visit-dst@example.org",
        starts_at=starts,
        minutes=60,
        zone=ZoneInfo("America/New_York"),
        summary="Video visit",
        description="",
        organizer_name="Practice",
        organizer_email="referrals@example.org",
    )
    (event,) = Calendar.from_ical(ics).walk("VEVENT")
    assert event.decoded("DTEND") - event.decoded("DTSTART") == timedelta(hours=1)
