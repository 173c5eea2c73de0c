from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import EmailField, SelectField, StringField, TelField
from wtforms.validators import DataRequired, Email, Length, Optional

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
