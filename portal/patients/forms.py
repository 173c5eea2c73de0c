from __future__ import annotations

from datetime import date

from wtforms import IntegerField, RadioField, StringField
from wtforms.validators import InputRequired, Length, NumberRange, Optional, ValidationError

from portal.forms import PortalForm
from portal.models import ContactMethod, PatientAnswer


class DateOfBirthForm(PortalForm):
    """Three boxes, as on GOV.UK: easier on a phone than a date picker for a birth date."""

    day = IntegerField(
        "Day", validators=[InputRequired("Enter the day."), NumberRange(1, 31, "Check the day.")]
    )
    month = IntegerField(
        "Month",
        validators=[InputRequired("Enter the month."), NumberRange(1, 12, "Check the month.")],
    )
    year = IntegerField(
        "Year",
        validators=[InputRequired("Enter the year."), NumberRange(1900, 2100, "Check the year.")],
    )

    def validate_year(self, _field) -> None:
        if self.date_of_birth is None and not (self.day.errors or self.month.errors):
            raise ValidationError("That is not a real date. Check the day and month.")

    @property
    def date_of_birth(self) -> date | None:
        try:
            return date(self.year.data, self.month.data, self.day.data)
        except (TypeError, ValueError, OverflowError):
            return None


class NextStepForm(PortalForm):
    contact = RadioField(
        "How should we contact you?",
        choices=[
            (ContactMethod.PHONE.value, "Phone call"),
            (ContactMethod.SMS.value, "Text message"),
            (ContactMethod.EMAIL.value, "Email"),
        ],
        validators=[InputRequired("Choose how we should contact you.")],
    )
    choice = RadioField(
        "What would you like to do?",
        validators=[InputRequired("Choose a time, ask us to call, or say no thanks.")],
    )
    reason = StringField(
        "If you are saying no, you can tell us why (optional)",
        validators=[Optional(), Length(max=300)],
    )

    def set_slots(self, slots: list[tuple[int, str]]) -> None:
        self.choice.choices = [(f"slot-{slot_id}", label) for slot_id, label in slots] + [
            (PatientAnswer.CALL_ME.value, "None of these times work: please call me"),
            (PatientAnswer.DECLINE.value, "I do not want this appointment"),
        ]

    @property
    def answer(self) -> PatientAnswer:
        if self.choice.data.startswith("slot-"):
            return PatientAnswer.SLOT
        return PatientAnswer(self.choice.data)

    @property
    def slot_id(self) -> int | None:
        return int(self.choice.data[5:]) if self.choice.data.startswith("slot-") else None
