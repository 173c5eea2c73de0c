from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, SelectField, StringField, TelField, TextAreaField
from wtforms.validators import DataRequired, Email, Length, Optional, ValidationError

from portal.models import Role
from portal.referrals.forms import phone_number, stripped


class PartnerForm(FlaskForm):
    name = StringField(
        "Practice name", filters=[stripped], validators=[DataRequired(), Length(max=160)]
    )
    specialty = StringField(
        "Type or specialty",
        description="For example: Primary care, Cardiology, Hospital discharge planning.",
        filters=[stripped],
        validators=[DataRequired(), Length(max=120)],
    )
    referral_contact_name = StringField(
        "Designated referral contact",
        filters=[stripped],
        validators=[DataRequired(), Length(max=120)],
    )
    referral_contact_email = EmailField(
        "Contact's email",
        filters=[stripped],
        validators=[DataRequired(), Length(max=254), Email(check_deliverability=False)],
    )
    referral_contact_phone = TelField(
        "Contact's phone",
        filters=[stripped],
        validators=[Optional(), Length(max=32), phone_number],
    )


class InviteForm(FlaskForm):
    full_name = StringField(
        "Full name", filters=[stripped], validators=[DataRequired(), Length(max=120)]
    )
    email = EmailField(
        "Email",
        filters=[stripped],
        validators=[DataRequired(), Length(max=254), Email(check_deliverability=False)],
    )
    role = SelectField("Role", choices=[(r.value, r.label) for r in Role if r is not Role.PARTNER])


class ServiceLineForm(FlaskForm):
    name = StringField("Name", filters=[stripped], validators=[DataRequired(), Length(max=120)])
    description = StringField(
        "Short description", filters=[stripped], validators=[Optional(), Length(max=500)]
    )
    eligibility_criteria = TextAreaField(
        "Eligibility criteria",
        description="One criterion per line. Partners see these on the referral form.",
        filters=[stripped],
        validators=[Optional(), Length(max=4000)],
    )
    required_documents = TextAreaField(
        "Required documents",
        description="One per line, e.g. “Most recent echocardiogram report”.",
        filters=[stripped],
        validators=[Optional(), Length(max=2000)],
    )
    required_answers = TextAreaField(
        "Required answers",
        description="One per line, e.g. “Latest HbA1c result and date”.",
        filters=[stripped],
        validators=[Optional(), Length(max=2000)],
    )
    active = BooleanField("Partners can refer to this service line", default=True)

    def validate_required_documents(self, field) -> None:
        _check_item_labels(field)

    def validate_required_answers(self, field) -> None:
        _check_item_labels(field)


def item_labels(text: str | None) -> list[str]:
    """The non-empty lines of a textarea, in order, without repeats."""
    seen: dict[str, None] = {}
    for line in (text or "").splitlines():
        if line.strip():
            seen.setdefault(line.strip(), None)
    return list(seen)


def _check_item_labels(field) -> None:
    if any(len(label) > 120 for label in item_labels(field.data)):
        raise ValidationError("Keep each item under 120 characters.")
