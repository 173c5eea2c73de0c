"""What a service line's referral packet says (seed 002): what we treat, who is eligible,
what to include, how to submit, what happens after, whom to call.

"What happens after" opens with the SLA promises, written here from the live targets
and business hours: the packet cannot promise other times than the clocks run on.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time

from babel import Locale
from babel.dates import get_timezone_name
from babel.lists import format_list
from flask_babel import get_locale, gettext, ngettext
from flask_babel import lazy_gettext as _l

from portal.admin.sla_settings import TARGET_STAGES
from portal.formatting import format_clock
from portal.models import SlaStage, Urgency
from portal.sla.calendar import BusinessCalendar
from portal.sla.clocks import all_target_minutes, load_calendar

URGENCY_HEADINGS = {
    Urgency.URGENT: _l("Urgent referrals"),
    Urgency.ROUTINE: _l("Routine referrals"),
}
# Each stage's clock as a promise to the referring office (%(time)s: its target).
STAGE_PROMISES = {
    SlaStage.FIRST_TOUCH: _l("our intake team picks up the referral within %(time)s"),
    SlaStage.TRIAGE: _l("a clinician accepts, declines or redirects it within %(time)s after that"),
    SlaStage.NEXT_STEP: _l(
        "we reach the patient with a next step within %(time)s of accepting the referral"
    ),
    SlaStage.PARTNER_FEEDBACK: _l("we report the outcome to you within %(time)s"),
}
# Lines an admin starts so are gathered into a bulleted list.
LIST_MARKERS = ("- ", "* ", "• ")
# Any date serves to write a time of day; one far from daylight-saving changes.
_ANY_ORDINARY_DAY = date(2026, 1, 5)


def _locale() -> Locale:
    return get_locale() or Locale.parse("en_US")


def business_time_in_words(minutes: float, minutes_per_day: float) -> str:
    """'1 business hour', '2 business days', '1 business hour and 30 minutes'.

    Whole business days where the target is a whole number of the calendar's days;
    hours and minutes otherwise, so the words are exactly the target.
    """
    whole, per_day = round(minutes), round(minutes_per_day)
    if per_day and whole >= per_day and whole % per_day == 0:
        return ngettext("%(num)d business day", "%(num)d business days", whole // per_day)
    hours, rest = divmod(whole, 60)
    if not hours:
        return ngettext("%(num)d business minute", "%(num)d business minutes", rest)
    parts = [ngettext("%(num)d business hour", "%(num)d business hours", hours)]
    if rest:
        parts.append(ngettext("%(num)d minute", "%(num)d minutes", rest))
    return format_list(parts, locale=_locale())


def sla_promises(
    targets: Mapping[tuple[SlaStage, Urgency], float], calendar: BusinessCalendar
) -> list[str]:
    """A sentence per urgency, each stage's target in the order the clocks run: "Urgent
    referrals: our intake team picks up the referral within 1 business hour, ..."."""
    per_day = calendar.minutes_per_business_day
    sentences = []
    for urgency in Urgency:
        clauses = [
            str(STAGE_PROMISES[stage])
            % {"time": business_time_in_words(targets[stage, urgency], per_day)}
            for stage in TARGET_STAGES
        ]
        sentences.append(
            gettext(
                "%(urgency)s: %(promises)s.",
                urgency=URGENCY_HEADINGS[urgency],
                promises=format_list(clauses, locale=_locale()),
            )
        )
    return sentences


def _time_of_day(moment: time, calendar: BusinessCalendar) -> str:
    return format_clock(datetime.combine(_ANY_ORDINARY_DAY, moment, tzinfo=calendar.zone))


def business_hours_in_words(calendar: BusinessCalendar) -> str:
    """'Monday to Friday, 9:00 AM to 5:00 PM': days in a row with the same hours together."""
    runs: list[tuple[int, int, tuple[time, time]]] = []
    for day in range(7):
        hours = calendar.hours.get(day)
        if not hours:
            continue
        if runs and runs[-1][1] == day - 1 and runs[-1][2] == hours:
            runs[-1] = (runs[-1][0], day, hours)
        else:
            runs.append((day, day, hours))
    names = _locale().days["format"]["wide"]
    parts = []
    for first, last, (opens, closes) in runs:
        days = names[first]
        if last != first:
            days = gettext("%(first)s to %(last)s", first=names[first], last=names[last])
        parts.append(
            gettext(
                "%(days)s, %(opens)s to %(closes)s",
                days=days,
                opens=_time_of_day(opens, calendar),
                closes=_time_of_day(closes, calendar),
            )
        )
    return "; ".join(parts)


def business_time_note(calendar: BusinessCalendar) -> str:
    """What "business" time means, and that the clock waits on the referring office."""
    waiting = gettext("The clock stops while we wait for something we asked you for.")
    hours = business_hours_in_words(calendar)
    if not hours:
        return waiting
    zone = get_timezone_name(calendar.zone, locale=_locale())
    return " ".join(
        (
            gettext(
                "Business hours are %(hours)s (%(zone)s), except holidays.",
                hours=hours,
                zone=zone,
            ),
            waiting,
        )
    )


def what_happens_after() -> list[str]:
    """The SLA promises for every urgency from the targets in force, then what
    "business hours" means: the opening of every packet's "What happens after"."""
    calendar = load_calendar()
    return [*sla_promises(all_target_minutes(), calendar), business_time_note(calendar)]


@dataclass(frozen=True)
class TextBlock:
    """A paragraph (one line) or a bulleted list (its items) of an admin's packet text."""

    is_list: bool
    lines: tuple[str, ...]


def text_blocks(text: str) -> list[TextBlock]:
    """An admin's plain text as the packet shows it: a paragraph per line, and lines
    starting "- " (or "* ", "• ") gathered into lists."""
    blocks: list[TextBlock] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line.startswith(LIST_MARKERS):
            item = line[2:].strip()
            if blocks and blocks[-1].is_list:
                blocks[-1] = TextBlock(True, (*blocks[-1].lines, item))
            else:
                blocks.append(TextBlock(True, (item,)))
        else:
            blocks.append(TextBlock(False, (line,)))
    return blocks
