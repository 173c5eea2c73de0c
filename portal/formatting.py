"""Every date, time and number people read, in one place, from CLDR through Babel.

Pages, messages and calendar files format through these functions (templates through
the filters of the same names), in the request's locale (the practice's, or a patient's
language: see portal.i18n) and the practice's time zone. In en_US:

    moment      Mon, Nov 30, 2026, 2:30 PM EST
    day         Mon, Nov 30, 2026
    visit_when  tomorrow, Tue, Dec 1 at 2:30 PM
    number      1,234.5     percent  35%     hours  4.2 h

CSV exports are for machines and stay ISO 8601 (portal.exports).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_skeleton, format_time
from babel.numbers import format_decimal
from babel.numbers import format_percent as babel_format_percent
from flask_babel import gettext, ngettext, pgettext

from portal.clock import utcnow
from portal.i18n import current_locale
from portal.localtime import practice_zone

_locale = current_locale


def _local(moment: datetime) -> datetime:
    return moment.astimezone(practice_zone())


def format_clock(moment: datetime) -> str:
    """'2:30 PM' (the locale's own hour cycle)."""
    return format_skeleton("hm" if _uses_12_hours() else "Hm", _local(moment), locale=_locale())


def _uses_12_hours() -> bool:
    return _twelve_hours(_locale())


def format_moment(moment: datetime | None) -> str:
    """'Mon, Nov 30, 2026, 2:30 PM EST': a date, a time and the zone it is in."""
    if moment is None:
        return ""
    return _moment_text(moment, _locale(), practice_zone())


# A page shows the same moments on every view (a timeline's events, a queue's dates),
# and Babel takes some 100 microseconds for each: the text depends on nothing else, so
# the latest few thousand are kept (a few hundred kB at most).
@lru_cache(maxsize=8192)
def _moment_text(moment: datetime, locale: Locale, zone: ZoneInfo) -> str:
    local = moment.astimezone(zone)
    day = format_skeleton("yMMMEd", local, locale=locale)
    clock = format_skeleton("hm" if _twelve_hours(locale) else "Hm", local, locale=locale)
    clock += " " + format_time(local, "z", tzinfo=local.tzinfo, locale=locale)
    return locale.datetime_formats["medium"].format(clock, day)


def _twelve_hours(locale: Locale) -> bool:
    return "h" in locale.time_formats["short"].pattern


def format_day(value: date | datetime | None) -> str:
    """'Mon, Nov 30, 2026'; a datetime is first put in the practice's zone."""
    if value is None:
        return ""
    if isinstance(value, datetime):
        value = _local(value)
    return format_skeleton("yMMMEd", value, locale=_locale())


def format_plain_day(value: date | None) -> str:
    """'Nov 30, 2026': a date without its weekday (a date of birth, a week's start)."""
    if value is None:
        return ""
    return format_date(value, "medium", locale=_locale())


def format_short_day(value: date | datetime) -> str:
    """'Nov 30': charts and tight columns."""
    if isinstance(value, datetime):
        value = _local(value)
    return format_skeleton("MMMd", value, locale=_locale())


def format_month(value: date) -> str:
    """'November 2026'."""
    return format_skeleton("yMMMM", value, locale=_locale())


def format_visit_when(moment: datetime, now: datetime | None = None) -> str:
    """'tomorrow, Tue, Dec 1 at 2:30 PM', 'today, ...', or 'Fri, Dec 4 at 9:00 AM'."""
    local, locale = _local(moment), _locale()
    days_away = (local.date() - _local(now or utcnow()).date()).days
    day = format_skeleton("MMMEd", local, locale=locale)
    relative = locale._data["date_fields"]["day"]["relative"]
    if days_away in (0, 1) and days_away in relative:
        day = f"{relative[days_away]}, {day}"
    if local.hour % 12 == 1:  # Spanish says "a la 1:30" but "a las 2:30"
        return pgettext("one o'clock", "%(day)s at %(time)s", day=day, time=format_clock(moment))
    return gettext("%(day)s at %(time)s", day=day, time=format_clock(moment))


def format_number(value: float | int, decimals: int = 0) -> str:
    """'1,234' or, with decimals, '1,234.5' (always that many places)."""
    pattern = "#,##0" + ("." + "0" * decimals if decimals else "")
    return format_decimal(value, pattern, locale=_locale())


def format_percent(value: float, decimals: int = 0) -> str:
    """`value` is already a percentage: 35.2 -> '35%' (the locale's sign and spacing)."""
    locale = _locale()
    pattern = locale.percent_formats[None].pattern
    if decimals:
        pattern = pattern.replace("#,##0", "#,##0." + "0" * decimals, 1)
    return babel_format_percent(value / 100, pattern, locale=locale)


def round_half_up(value: float, places: int) -> float:
    """`value` to `places` decimals with a half rounded up (4.25 -> 4.3, 6.25 -> 6.3), as
    a figure is rounded by hand; Python's round() and Babel round a half to even, and
    the binary float 4.25 is written as its shortest decimal before it is rounded."""
    exponent = Decimal(1).scaleb(-places)
    return float(Decimal(repr(value)).quantize(exponent, rounding=ROUND_HALF_UP))


def format_hours(value: float) -> str:
    """'4.2 h': to one decimal, a half rounded up."""
    return gettext("%(hours)s h", hours=format_number(round_half_up(value, 1), 1))


def count_reminders(count: int) -> str:
    """'after 2 reminders', 'after 1 reminder', or 'with no reminder sent' (the jobs
    were down until it was time to escalate): staff read real counts, never 'after 0'."""
    if count == 0:
        return gettext("with no reminder sent")
    return ngettext("after %(num)d reminder", "after %(num)d reminders", count)
