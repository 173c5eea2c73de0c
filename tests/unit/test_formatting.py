"""Dates, times and numbers as the practice's people and patients read them (CLDR)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from flask_babel import force_locale

from portal import create_app
from portal.config import ConfigurationError, TestConfig
from portal.formatting import (
    count_reminders,
    format_day,
    format_hours,
    format_moment,
    format_number,
    format_percent,
    format_plain_day,
    format_visit_when,
)
from portal.localtime import practice_zone
from portal.models import BusinessHours
from portal.patients.forms import date_part_order

# 7:30 PM UTC on Monday 30 November 2026 is 2:30 PM in New York (EST).
MOMENT = datetime(2026, 11, 30, 19, 30, tzinfo=UTC)


@pytest.fixture
def context(app):
    with app.test_request_context("/"):
        yield


def test_a_moment_reads_the_us_way_in_the_practice_zone(context):
    assert format_moment(MOMENT) == "Mon, Nov 30, 2026, 2:30 PM EST"
    assert format_day(MOMENT) == "Mon, Nov 30, 2026"
    assert format_plain_day(date(1961, 3, 27)) == "Mar 27, 1961"
    summer = datetime(2026, 7, 4, 16, 5, tzinfo=UTC)
    assert format_moment(summer) == "Sat, Jul 4, 2026, 12:05 PM EDT"


def test_a_moment_reads_the_spanish_way_for_a_spanish_reader(context):
    with force_locale("es_US"):
        assert (
            format_moment(MOMENT) == "lun, 30 de nov de 2026, 2:30\u202fp.m. EST"
        )  # CLDR: a narrow no-break space


def test_a_visit_says_its_day_and_time(context):
    monday_morning = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)  # 9:00 AM EST
    tuesday = datetime(2026, 12, 1, 19, 30, tzinfo=UTC)
    assert format_visit_when(tuesday, monday_morning) == "tomorrow, Tue, Dec 1 at 2:30 PM"
    assert format_visit_when(MOMENT, monday_morning) == "today, Mon, Nov 30 at 2:30 PM"
    friday = datetime(2026, 12, 4, 14, 0, tzinfo=UTC)
    assert format_visit_when(friday, monday_morning) == "Fri, Dec 4 at 9:00 AM"
    with force_locale("es_US"):
        assert format_visit_when(tuesday, monday_morning) == (
            "mañana, mar, 1 de dic a las 2:30\u202fp.m."
        )


def test_tomorrow_is_the_practice_zones_tomorrow(context):
    # 11:30 PM Monday in New York is already Tuesday in UTC; the visit at 9 AM Tuesday
    # is still "tomorrow" for the patient.
    late_monday = datetime(2026, 12, 1, 4, 30, tzinfo=UTC)
    visit = datetime(2026, 12, 1, 14, 0, tzinfo=UTC)
    assert format_visit_when(visit, late_monday) == "tomorrow, Tue, Dec 1 at 9:00 AM"


def test_numbers_and_percentages(context):
    assert format_number(1234) == "1,234"
    assert format_number(1234.56, 1) == "1,234.6"
    assert format_percent(35.2) == "35%"
    assert format_percent(35.26, 1) == "35.3%"
    assert format_hours(4.2) == "4.2 h"
    with force_locale("es_US"):
        assert format_number(1234.5, 1) == "1,234.5"  # es_US writes numbers the US way


def test_escalation_counts_are_real():
    assert count_reminders(0) == "with no reminder sent"
    assert count_reminders(1) == "after 1 reminder"
    assert count_reminders(2) == "after 2 reminders"


def test_the_admins_business_hours_zone_is_the_zone_of_every_page(app):
    with app.app_context():
        from portal.extensions import db

        db.session.add(BusinessHours(id=1, time_zone="America/Los_Angeles", weekly={}))
        db.session.commit()
    with app.test_request_context("/"):
        assert practice_zone().key == "America/Los_Angeles"
        assert format_moment(MOMENT) == "Mon, Nov 30, 2026, 11:30 AM PST"


def test_the_date_of_birth_is_asked_in_the_locales_order():
    assert date_part_order("en_US") == ("month", "day", "year")
    assert date_part_order("en_GB") == ("day", "month", "year")
    assert date_part_order("ja_JP") == ("year", "month", "day")


def test_a_practice_locale_must_be_a_real_locale_with_a_territory(database_url):
    with pytest.raises(ConfigurationError, match="not a CLDR locale"):
        create_app(TestConfig, DATABASE_URL=database_url, PRACTICE_LOCALE="xx_QQ")
    with pytest.raises(ConfigurationError, match="territory"):
        create_app(TestConfig, DATABASE_URL=database_url, PRACTICE_LOCALE="en")


def test_one_oclock_is_singular_in_spanish(context):
    monday_morning = datetime(2026, 11, 30, 14, 0, tzinfo=UTC)
    one_thirty = datetime(2026, 12, 1, 18, 30, tzinfo=UTC)  # 1:30 PM EST
    with force_locale("es_US"):
        assert format_visit_when(one_thirty, monday_morning).endswith("a la 1:30\u202fp.m.")
    assert format_visit_when(one_thirty, monday_morning) == "tomorrow, Tue, Dec 1 at 1:30 PM"
