from __future__ import annotations

import calendar
import re
from datetime import date

from babel.dates import get_date_format
from flask import current_app
from flask_babel import gettext, lazy_gettext
from wtforms import Field, RadioField, StringField
from wtforms.validators import InputRequired, Length, Optional

from portal.clock import utcnow
from portal.forms import PortalForm
from portal.models import ContactMethod, PatientAnswer

# The example date in the hint: 27 March 1961, in whatever order the locale writes dates.
EXAMPLE_BIRTH_DATE = date(1961, 3, 27)
OLDEST_AGE_YEARS = 130
_DIGITS = re.compile(r"[0-9]+")


def date_part_order(locale: str) -> tuple[str, str, str]:
    """('month', 'day', 'year') for en_US: the order the locale's short date writes
    them in (CLDR), which is the order people type a date of birth in."""
    pattern = get_date_format("short", locale=locale).pattern
    positions = {
        name: pattern.find(letter) for name, letter in (("day", "d"), ("month", "M"), ("year", "y"))
    }
    return tuple(sorted(positions, key=positions.get))


class DateOfBirthForm(PortalForm):
    """Three boxes, as in the GOV.UK date input, but in the practice locale's order
    (Month, Day, Year in the US). Each box is checked on its own first, so a wrong try
    says which part looks wrong; only a real date is compared with the record."""

    month = StringField(lazy_gettext("Month"), validators=[Length(max=2)])
    day = StringField(lazy_gettext("Day"), validators=[Length(max=2)])
    year = StringField(lazy_gettext("Year"), validators=[Length(max=4)])

    def parts(self) -> list[Field]:
        """The boxes in the order people write a date here."""
        return [self[name] for name in date_part_order(current_app.config["PRACTICE_LOCALE"])]

    def example(self) -> str:
        """'3 27 1961' for en_US, '27 3 1961' where the day comes first."""
        values = {
            "day": EXAMPLE_BIRTH_DATE.day,
            "month": EXAMPLE_BIRTH_DATE.month,
            "year": EXAMPLE_BIRTH_DATE.year,
        }
        return " ".join(str(values[field.name]) for field in self.parts())

    def order_hint(self) -> str:
        """'month, day, year' in the page's language."""
        return ", ".join(str(field.label.text).lower() for field in self.parts())

    def validate(self, extra_validators=None) -> bool:
        if not super().validate(extra_validators):
            return False
        numbers = {field.name: self._number(field) for field in self.parts()}
        if any(field.errors for field in self.parts()):
            return False
        self._check_parts(numbers["month"], numbers["day"], numbers["year"])
        return not any(field.errors for field in self.parts())

    def _number(self, field: Field) -> int | None:
        text = (field.data or "").strip()
        if not text:
            field.errors.append(_ENTER[field.name]())
            return None
        if not _DIGITS.fullmatch(text):
            field.errors.append(
                gettext("Use numbers only, like %(example)s.", example=_EXAMPLE_PART[field.name])
            )
            return None
        return int(text)

    def _check_parts(self, month: int, day: int, year: int) -> None:
        this_year = utcnow().year
        if not 1 <= month <= 12:
            message = gettext("The month must be a number from 1 to 12.")
            if 13 <= month <= 31 and 1 <= day <= 12 and self._month_before_day():
                message += " " + gettext("Did you put the day first? The month comes first.")
            self.month.errors.append(message)
        if len(self.year.data.strip()) != 4:
            self.year.errors.append(gettext("Enter all 4 numbers of the year, like 1961."))
        elif not this_year - OLDEST_AGE_YEARS <= year <= this_year:
            self.year.errors.append(gettext("Check the year: it must be the year you were born."))
        if not 1 <= day <= 31:
            self.day.errors.append(gettext("The day must be a number from 1 to 31."))
        elif not self.month.errors:
            leap_year = 2000 if self.year.errors else year  # February has 29 days at most
            longest = calendar.monthrange(leap_year, month)[1]
            if day > longest:
                self.day.errors.append(
                    gettext("That month has only %(days)s days. Check the day.", days=longest)
                )

    def _month_before_day(self) -> bool:
        names = [field.name for field in self.parts()]
        return names.index("month") < names.index("day")

    @property
    def date_of_birth(self) -> date | None:
        try:
            return date(int(self.year.data), int(self.month.data), int(self.day.data))
        except (TypeError, ValueError, OverflowError):
            return None

    @property
    def ambiguous(self) -> bool:
        """Could the day and month be the other way round (both 12 or less, and not
        equal)? Then a mismatch reminds the patient of the order; it never says whether
        the swapped date would have matched."""
        given = self.date_of_birth
        return given is not None and given.day <= 12 and given.day != given.month


_ENTER = {
    "day": lambda: gettext("Enter the day you were born."),
    "month": lambda: gettext("Enter the month you were born."),
    "year": lambda: gettext("Enter the year you were born."),
}
_EXAMPLE_PART = {"day": "27", "month": "3", "year": "1961"}


class NextStepForm(PortalForm):
    contact = RadioField(
        lazy_gettext("How should we contact you?"),
        choices=[
            (ContactMethod.PHONE.value, lazy_gettext("Phone call")),
            (ContactMethod.SMS.value, lazy_gettext("Text message")),
            (ContactMethod.EMAIL.value, lazy_gettext("Email")),
        ],
        validators=[InputRequired(lazy_gettext("Choose how we should contact you."))],
    )
    choice = RadioField(
        lazy_gettext("What would you like to do?"),
        validators=[InputRequired(lazy_gettext("Pick a time, ask us to call, or say no."))],
    )
    reason = StringField(
        lazy_gettext("If you say no, you can tell us why. You do not have to."),
        validators=[Optional(), Length(max=300)],
    )

    def set_slots(self, slots: list[tuple[int, str]]) -> None:
        """The times to pick from, then a call and no; with no time listed, a call is
        not "none of these"."""
        if slots:
            call_me = gettext("None of these times work. Please call me.")
        else:
            call_me = gettext("Please call me to find a time.")
        self.choice.choices = [(f"slot-{slot_id}", label) for slot_id, label in slots] + [
            (PatientAnswer.CALL_ME.value, call_me),
            (PatientAnswer.DECLINE.value, gettext("I do not want this visit.")),
        ]

    @property
    def answer(self) -> PatientAnswer:
        if self.choice.data.startswith("slot-"):
            return PatientAnswer.SLOT
        return PatientAnswer(self.choice.data)

    @property
    def slot_id(self) -> int | None:
        return int(self.choice.data[5:]) if self.choice.data.startswith("slot-") else None
