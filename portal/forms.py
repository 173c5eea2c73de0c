"""`PortalForm`, the base of every form: what a field may hold is bounded before any
view, validator or query sees it.

- Text (every StringField: text areas, emails, phones, passwords, hidden fields) is at
  most its declared `Length(max=...)`, and holds no control characters (see
  portal/text.py); only text areas may hold line breaks.
- Whole numbers fit an INTEGER column; decimals are finite and of human size.
- Dates and times stay between 1800 and 2199, so no arithmetic on them leaves the
  calendar Python (or a report week around them) can represent.

These checks run before the form's own validators: a value that fails one is refused
with its message, and nothing downstream (an e-mail check, a lookup) ever sees it.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from functools import lru_cache

from babel import Locale
from babel.support import Translations
from flask import current_app, request
from flask_babel import gettext
from flask_wtf import FlaskForm
from flask_wtf.form import SUBMIT_METHODS, _Auto
from werkzeug.datastructures import CombinedMultiDict
from wtforms import (
    DateField,
    DateTimeField,
    DecimalField,
    Field,
    FloatField,
    IntegerField,
    StringField,
    TextAreaField,
)
from wtforms.i18n import messages_path
from wtforms.validators import Length, NumberRange

from portal.converters import BIGGEST_ID
from portal.form_html import write_field
from portal.i18n import current_locale
from portal.query_args import EARLIEST_DATE, LATEST_DATE
from portal.text import refusal_for_text

# Where a text field declares no Length (every field should: a test checks), this.
UNDECLARED_MAX_LENGTH = 1000
LARGEST_DECIMAL = Decimal(10) ** 12


def declared_max_length(field: Field) -> int | None:
    """The `max` of the field's Length validator, if it has one."""
    limits = [v.max for v in field.validators if isinstance(v, Length) and v.max >= 0]
    return min(limits) if limits else None


def _has_bounded_range(field: Field) -> bool:
    return any(
        isinstance(v, NumberRange) and v.min is not None and v.max is not None
        for v in field.validators
    )


def boundary_refusal(field: Field) -> str | None:
    """Why `field`'s value is outside what any field of its kind may hold; None if inside."""
    data = field.data
    if data is None:
        return None
    if isinstance(field, StringField) and isinstance(data, str):
        return refusal_for_text(
            data,
            max_length=declared_max_length(field) or UNDECLARED_MAX_LENGTH,
            multiline=isinstance(field, TextAreaField),
        )
    # A field with a range of its own says so in its own words ("Check the day.").
    huge = isinstance(field, IntegerField) and isinstance(data, int) and abs(data) > BIGGEST_ID
    if huge and not _has_bounded_range(field):
        return gettext("That number is far too large.")
    if isinstance(field, DecimalField | FloatField) and isinstance(data, Decimal | float):
        number = Decimal(data)
        if not number.is_finite() or abs(number) >= LARGEST_DECIMAL:
            return gettext("Enter an ordinary number.")
    if isinstance(field, DateField | DateTimeField) and isinstance(data, date):
        day = data.date() if isinstance(data, datetime) else data
        if not EARLIEST_DATE <= day <= LATEST_DATE:
            return gettext(
                "Enter a date between %(first)s and %(last)s.",
                first=EARLIEST_DATE.year,
                last=LATEST_DATE.year,
            )
    return None


@lru_cache(maxsize=16)
def _wtforms_catalog(locale: Locale) -> Translations:
    return Translations.load(messages_path(), [locale], domain="wtforms")


class PortalForm(FlaskForm):
    """A Flask-WTF form whose fields are bounded by kind before their own validators run."""

    class Meta(FlaskForm.Meta):
        def wrap_formdata(self, form, formdata):
            """Only a browser's form body (and its files) fill a form. Flask-WTF would also
            take a JSON body, whose numbers, lists and objects no field here expects."""
            if formdata is not _Auto:
                return formdata
            if request.method not in SUBMIT_METHODS:
                return None
            if request.files:
                return CombinedMultiDict((request.files, request.form))
            return request.form or None

        def get_translations(self, form):
            """WTForms' own messages ("Not a valid integer value.") in the page's language.
            Flask-WTF reads their catalog from disk again on every request; it is the same
            file, so it is read once per locale."""
            if not current_app.config.get("WTF_I18N_ENABLED", True):
                return super().get_translations(form)
            return _wtforms_catalog(current_locale())

        def render_field(self, field, render_kw):
            """The markup WTForms' widgets write, written faster (portal/form_html.py)."""
            return write_field(field, render_kw)

    def validate(self, extra_validators=None) -> bool:
        refusals = {
            name: problem
            for name, field in self._fields.items()
            if (problem := boundary_refusal(field)) is not None
        }
        if refusals:
            # The other fields are checked once these are fixed: CSRF is checked for
            # every request before any view runs (CSRFProtect), so it is not skipped.
            for name, field in self._fields.items():
                field.errors = [refusals[name]] if name in refusals else []
            return False
        return super().validate(extra_validators)
