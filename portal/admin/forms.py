from __future__ import annotations

import re
from zoneinfo import available_timezones

from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from wtforms import (
    BooleanField,
    DateField,
    DecimalField,
    EmailField,
    HiddenField,
    SelectField,
    StringField,
    TelField,
    TextAreaField,
    TimeField,
)
from wtforms.validators import DataRequired, Email, Length, NumberRange, Optional, ValidationError

from portal.admin.partners import MAX_LOADED_LENGTH
from portal.forms import PortalForm
from portal.models import Role
from portal.referrals.forms import item_labels_fit, phone_number, stripped

# FHIR's uri and code types (https://hl7.org/fhir/R4/datatypes.html#primitive).
FHIR_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:\S+")
FHIR_CODE = re.compile(r"[^\s]+( [^\s]+)*")


class PartnerForm(PortalForm):
    name = StringField(
        _l("Practice name"), filters=[stripped], validators=[DataRequired(), Length(max=160)]
    )
    specialty = StringField(
        _l("Type or specialty"),
        description=_l("For example: Primary care, Cardiology, Hospital discharge planning."),
        filters=[stripped],
        validators=[DataRequired(), Length(max=120)],
    )
    referral_contact_name = StringField(
        _l("Designated referral contact"),
        filters=[stripped],
        validators=[DataRequired(), Length(max=120)],
    )
    referral_contact_email = EmailField(
        _l("Contact's email"),
        filters=[stripped],
        validators=[DataRequired(), Length(max=254), Email(check_deliverability=False)],
    )
    referral_contact_phone = TelField(
        _l("Contact's phone"),
        filters=[stripped],
        validators=[Optional(), Length(max=32), phone_number],
    )


class PartnerEditForm(PartnerForm):
    """An office's details, with the values the page was loaded with (admin/partners.py)."""

    loaded = HiddenField(validators=[DataRequired(), Length(max=MAX_LOADED_LENGTH)])


class PartnerInviteForm(PortalForm):
    """A user for a referring office (always the partner role)."""

    full_name = StringField(
        _l("Full name"), filters=[stripped], validators=[DataRequired(), Length(max=120)]
    )
    email = EmailField(
        _l("Email"),
        filters=[stripped],
        validators=[DataRequired(), Length(max=254), Email(check_deliverability=False)],
    )


class InviteForm(PartnerInviteForm):
    """A member of staff, with their role."""

    role = SelectField(
        _l("Role"), choices=[(r.value, r.label) for r in Role if r is not Role.PARTNER]
    )


class ServiceLineForm(PortalForm):
    name = StringField(_l("Name"), filters=[stripped], validators=[DataRequired(), Length(max=120)])
    description = StringField(
        _l("Short description"), filters=[stripped], validators=[Optional(), Length(max=500)]
    )
    eligibility_criteria = TextAreaField(
        _l("Eligibility criteria"),
        description=_l("One criterion per line. Partners see these on the referral form."),
        filters=[stripped],
        validators=[Optional(), Length(max=4000)],
    )
    required_documents = TextAreaField(
        _l("Required documents"),
        description=_l("One per line, e.g. “Most recent echocardiogram report”."),
        filters=[stripped],
        validators=[Optional(), Length(max=2000)],
    )
    required_answers = TextAreaField(
        _l("Required answers"),
        description=_l("One per line, e.g. “Latest HbA1c result and date”."),
        filters=[stripped],
        validators=[Optional(), Length(max=2000)],
    )
    active = BooleanField(_l("Partners can refer to this service line"), default=True)
    # The referral packet: plain text, a paragraph per line, "- " for a list item. The
    # bounds keep a full packet on one printed page.
    packet_treats = TextAreaField(
        _l("What we treat"),
        description=_l("Conditions and common reasons to refer, e.g. “- Heart failure, NYHA II”."),
        filters=[stripped],
        validators=[Optional(), Length(max=1200)],
    )
    packet_how_to_submit = TextAreaField(
        _l("How to submit"),
        description=_l("Left empty, the packet says to use this portal's referral form."),
        filters=[stripped],
        validators=[Optional(), Length(max=800)],
    )
    packet_after = TextAreaField(
        _l("What happens after"),
        description=_l(
            "The packet already states your SLA targets in words; add what follows them, "
            "e.g. what the first visit is like."
        ),
        filters=[stripped],
        validators=[Optional(), Length(max=800)],
    )
    packet_contacts = TextAreaField(
        _l("Contacts"),
        description=_l(
            "Who to call about a referral, and when. Left empty, the packet gives the "
            "practice phone."
        ),
        filters=[stripped],
        validators=[Optional(), Length(max=500)],
    )

    # How EHRs name the service line in a FHIR ServiceRequest.code (docs/fhir.md).
    fhir_system = StringField(
        _l("FHIR code system"),
        description=_l("The system of the code EHRs send, e.g. http://snomed.info/sct."),
        filters=[stripped],
        validators=[Optional(), Length(max=200)],
    )
    fhir_code = StringField(
        _l("FHIR code"),
        description=_l("The code in that system, e.g. 183519002 (referral to cardiology)."),
        filters=[stripped],
        validators=[Optional(), Length(max=64)],
    )

    def validate_fhir_system(self, field) -> None:
        if field.data and not FHIR_URI.fullmatch(field.data):
            raise ValidationError(_("Give an absolute URI such as http://snomed.info/sct."))
        if bool(field.data) != bool(self.fhir_code.data):
            raise ValidationError(_("Give both the code system and the code, or neither."))

    def validate_fhir_code(self, field) -> None:
        if field.data and not FHIR_CODE.fullmatch(field.data):
            raise ValidationError(_("A code has no spaces at either end and no double spaces."))

    def validate_required_documents(self, field) -> None:
        item_labels_fit(self, field)

    def validate_required_answers(self, field) -> None:
        item_labels_fit(self, field)


class BusinessHoursForm(PortalForm):
    """The practice week; the fields per weekday are added by `business_hours_form_class`."""

    time_zone = StringField(
        _l("Time zone"),
        description=_l("An IANA name such as America/New_York."),
        filters=[stripped],
        validators=[DataRequired(), Length(max=64)],
    )

    def validate_time_zone(self, field) -> None:
        # The IANA list, not ZoneInfo(): "America" names a folder of zones, not one.
        if field.data not in available_timezones():
            raise ValidationError(_("Not a known time zone, e.g. America/Chicago."))

    def weekly(self) -> dict[int, tuple]:
        result = {}
        for day in range(7):
            closed = self[f"closed_{day}"].data
            opens, closes = self[f"opens_{day}"].data, self[f"closes_{day}"].data
            result[day] = None if closed or not (opens and closes) else (opens, closes)
        return result

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        for day in range(7):
            if self[f"closed_{day}"].data:
                continue
            opens, closes = self[f"opens_{day}"], self[f"closes_{day}"]
            if not (opens.data and closes.data) or closes.data <= opens.data:
                closes.errors = [
                    *closes.errors,
                    _("Give an opening time before the closing time."),
                ]
                valid = False
        if all(self[f"closed_{day}"].data for day in range(7)):
            self.time_zone.errors = [*self.time_zone.errors, _("Open on at least one day.")]
            valid = False
        return valid


def business_hours_form_class(weekdays: list[str]) -> type[BusinessHoursForm]:
    fields = {}
    for day, name in enumerate(weekdays):
        fields[f"opens_{day}"] = TimeField(_l("%(day)s opens", day=name), validators=[Optional()])
        fields[f"closes_{day}"] = TimeField(_l("%(day)s closes", day=name), validators=[Optional()])
        fields[f"closed_{day}"] = BooleanField(_l("Closed on %(day)s", day=name))
    return type("BusinessHoursWeekForm", (BusinessHoursForm,), fields)


class HolidayForm(PortalForm):
    day = DateField(_l("Date"), validators=[DataRequired()])
    name = StringField(_l("Name"), filters=[stripped], validators=[DataRequired(), Length(max=120)])


class TargetsForm(PortalForm):
    """SLA targets in business hours; fields `<stage>__<urgency>` added per stage."""


def targets_form_class(stages, urgencies) -> type[TargetsForm]:
    fields = {
        f"{stage.value}__{urgency.value}": DecimalField(
            f"{stage.label}, {urgency.value}",
            places=2,
            validators=[DataRequired(), NumberRange(min=0.25, max=24 * 30)],
        )
        for stage in stages
        for urgency in urgencies
    }
    return type("SlaTargetsForm", (TargetsForm,), fields)
