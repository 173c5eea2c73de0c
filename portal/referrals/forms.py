"""Forms for submitting a referral and for each action on one."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date

import phonenumbers
from flask import current_app
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_wtf.file import FileField, MultipleFileField
from wtforms import (
    BooleanField,
    DateField,
    EmailField,
    Field,
    HiddenField,
    IntegerField,
    RadioField,
    SelectField,
    StringField,
    TelField,
    TextAreaField,
)
from wtforms.validators import (
    DataRequired,
    Email,
    InputRequired,
    Length,
    NumberRange,
    Optional,
    Regexp,
    ValidationError,
)

from portal.clock import utcnow
from portal.converters import BIGGEST_ID
from portal.forms import PortalForm
from portal.models import (
    Channel,
    ContactMethod,
    ItemKind,
    PatientLanguage,
    ServiceLine,
    Urgency,
)
from portal.phones import EXAMPLE_PHONE, PHONE_REGION
from portal.referrals.documents import (
    ACCEPTED_DESCRIPTION,
    DocumentRefused,
    Upload,
    has_file,
    read_upload,
)
from portal.referrals.duplicates import is_submission_token
from portal.referrals.npi import is_valid_npi
from portal.sla.clocks import BREACH_REASONS

OLDEST_PLAUSIBLE_AGE_YEARS = 120


def valid_npi(_form: PortalForm, field: Field) -> None:
    value = (field.data or "").strip().replace(" ", "")
    if not (len(value) == 10 and value.isdigit()):
        raise ValidationError(gettext("Enter the 10-digit NPI of the referring provider."))
    if not is_valid_npi(value):
        raise ValidationError(
            gettext("This NPI is not valid: check the digits (the last one is a check).")
        )
    field.data = value


def plausible_date_of_birth(_form: PortalForm, field: Field) -> None:
    today = utcnow().date()
    if field.data is None:
        return
    if field.data >= today:
        raise ValidationError(gettext("The date of birth must be in the past."))
    if field.data < date(today.year - OLDEST_PLAUSIBLE_AGE_YEARS, today.month, 1):
        raise ValidationError(
            gettext(
                "The date of birth is more than %(years)s years ago: check it.",
                years=OLDEST_PLAUSIBLE_AGE_YEARS,
            )
        )


def phone_number(_form: PortalForm, field: Field) -> None:
    """Accept the usual ways of writing a number; store it in E.164."""
    if not field.data:
        return
    try:
        parsed = phonenumbers.parse(field.data, PHONE_REGION)
    except phonenumbers.NumberParseException:
        raise ValidationError(
            gettext("Enter a phone number, like %(example)s.", example=EXAMPLE_PHONE)
        ) from None
    if not phonenumbers.is_valid_number(parsed):
        raise ValidationError(
            gettext("This phone number is not valid: check the area code and digits.")
        )
    field.data = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def item_labels(text: str | None) -> list[str]:
    """One item per line of a textarea: the non-empty lines, in order, without repeats."""
    seen: dict[str, None] = {}
    for line in (text or "").splitlines():
        if line.strip():
            seen.setdefault(line.strip(), None)
    return list(seen)


ITEM_LABEL_MAX_LENGTH = 120  # referral_item.label and required_item.label


def item_labels_fit(_form: PortalForm, field: Field) -> None:
    """Each line of a one-item-per-line textarea becomes an item label: keep each short."""
    if any(len(label) > ITEM_LABEL_MAX_LENGTH for label in item_labels(field.data)):
        raise ValidationError(
            gettext("Keep each line under %(count)s characters.", count=ITEM_LABEL_MAX_LENGTH)
        )


def stripped(value: str | None) -> str | None:
    return value.strip() if isinstance(value, str) else value


def read_document(storage) -> Upload:
    """An uploaded file as a document, or a ValidationError saying why not."""
    try:
        return read_upload(storage, current_app.config["DOCUMENT_MAX_BYTES"])
    except DocumentRefused as refused:
        raise ValidationError(str(refused)) from None


class ItemFieldsMixin:
    """A form with one field per referral item: a file for a document, text for an answer.

    The class provides `item_fields()`; uploads are read into `item_uploads`.
    """

    item_uploads: dict[int, Upload]

    def read_item_documents(self) -> bool:
        valid = True
        for item, item_field in self.item_fields():
            if item.kind is ItemKind.DOCUMENT and has_file(item_field.data):
                try:
                    self.item_uploads[item.id] = read_document(item_field.data)
                except ValidationError as refused:
                    item_field.errors = [*item_field.errors, str(refused)]
                    valid = False
        return valid

    def item_answers(self) -> dict[int, str]:
        return {
            item.id: item_field.data or ""
            for item, item_field in self.item_fields()
            if item.kind is ItemKind.ANSWER
        }


class ReferralForm(ItemFieldsMixin, PortalForm):
    """The one-page referral form. Use `referral_form_class` to get one with the
    selected service line's required items."""

    referring_provider_name = StringField(
        _l("Referring provider's name"),
        filters=[stripped],
        validators=[DataRequired(_l("Enter the referring provider's name.")), Length(max=120)],
    )
    referring_provider_npi = StringField(
        _l("Referring provider's NPI"),
        description=_l("10 digits."),
        filters=[stripped],
        validators=[Length(max=20, message=_l("Enter the 10-digit NPI.")), valid_npi],
    )
    patient_first_name = StringField(
        _l("First name"),
        filters=[stripped],
        validators=[DataRequired(_l("Enter the patient's first name.")), Length(max=100)],
    )
    patient_last_name = StringField(
        _l("Last name"),
        filters=[stripped],
        validators=[DataRequired(_l("Enter the patient's last name.")), Length(max=100)],
    )
    patient_date_of_birth = DateField(
        _l("Date of birth"),
        validators=[
            InputRequired(_l("Enter the patient's date of birth.")),
            plausible_date_of_birth,
        ],
    )
    patient_phone = TelField(
        _l("Phone"), filters=[stripped], validators=[Optional(), Length(max=32), phone_number]
    )
    patient_email = EmailField(
        _l("Email"),
        filters=[stripped],
        validators=[
            Optional(),
            Length(max=254),
            Email(_l("Enter an email address like name@example.com."), check_deliverability=False),
        ],
    )
    preferred_contact = RadioField(
        _l("How does the patient prefer to be contacted?"),
        choices=[
            (ContactMethod.PHONE.value, _l("Phone call")),
            (ContactMethod.SMS.value, _l("Text message")),
            (ContactMethod.EMAIL.value, _l("Email")),
        ],
        validators=[InputRequired(_l("Choose how the patient prefers to be contacted."))],
    )
    patient_language = RadioField(
        _l("Which language does the patient read best?"),
        description=_l("We write to the patient, and show their pages, in this language."),
        choices=[(language.value, language.label) for language in PatientLanguage],
        default=PatientLanguage.ENGLISH.value,
        # English when a client sends nothing (the form always sends its checked choice).
        validators=[DataRequired(_l("Choose the language the patient reads best."))],
    )
    service_line = SelectField(
        _l("Service line"),
        validators=[DataRequired(_l("Choose the service line you are referring to."))],
    )
    urgency = RadioField(
        _l("Urgency"),
        choices=[
            (Urgency.ROUTINE.value, _l("Routine")),
            (Urgency.URGENT.value, _l("Urgent: needs contact within hours")),
        ],
        default=Urgency.ROUTINE.value,
        validators=[InputRequired(_l("Choose the urgency."))],
    )
    reason = TextAreaField(
        _l("Reason for referral"),
        filters=[stripped],
        validators=[DataRequired(_l("Enter the reason for the referral.")), Length(max=500)],
    )
    clinical_context = TextAreaField(
        _l("Supporting clinical context"),
        description=_l("Relevant history, medications, results. Optional."),
        filters=[stripped],
        validators=[Optional(), Length(max=5000)],
    )
    documents = MultipleFileField(
        _l("Supporting documents"),
        description=_l(
            "Optional. %(formats)s, up to 10 files.", formats=ACCEPTED_DESCRIPTION
        ),
    )
    source_code = StringField(
        _l("Campaign or source code"),
        description=_l("Optional, if you were given one."),
        filters=[stripped],
        validators=[
            Optional(),
            Length(max=40),
            Regexp(r"^[A-Za-z0-9_-]+$", message=_l("Use letters, digits, - and _ only.")),
        ],
    )
    consent_to_contact = BooleanField(
        _l("The patient consented to be contacted"),
        validators=[
            DataRequired(_l("The patient must consent to be contacted before you refer."))
        ],
    )
    consent_to_outcome_sharing = BooleanField(
        _l("The patient consented to outcome sharing with our office")
    )
    submission_token = HiddenField(validators=[Length(max=64)])

    def __init__(self, *args, service_lines: list[ServiceLine], **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.service_lines = {str(line.id): line for line in service_lines}
        self.service_line.choices = [("", gettext("Choose a service line"))] + [
            (str(line.id), line.name) for line in service_lines
        ]
        self.uploads: list[Upload] = []
        self.item_uploads: dict[int, Upload] = {}

    @property
    def selected_service_line(self) -> ServiceLine | None:
        return self.service_lines.get(self.service_line.data or "")

    def item_fields(self) -> list[tuple[object, Field]]:
        line = self.selected_service_line
        if line is None:
            return []
        return [
            (item, self[f"item_{item.id}"])
            for item in line.required_items
            if f"item_{item.id}" in self
        ]

    def validate_submission_token(self, field: Field) -> None:
        if not is_submission_token(field.data or ""):
            raise ValidationError(
                gettext("The form is incomplete: reload the page and try again.")
            )

    def validate_preferred_contact(self, field: Field) -> None:
        needs_phone = field.data in (ContactMethod.PHONE.value, ContactMethod.SMS.value)
        if needs_phone and not self.patient_phone.data:
            raise ValidationError(gettext("Add the patient's phone number, or choose email."))
        if field.data == ContactMethod.EMAIL.value and not self.patient_email.data:
            raise ValidationError(
                gettext("Add the patient's email address, or choose phone or text.")
            )

    def validate_documents(self, field: Field) -> None:
        files = [storage for storage in field.data or [] if has_file(storage)]
        limit = current_app.config["DOCUMENT_MAX_COUNT"]
        if len(files) > limit:
            raise ValidationError(gettext("Attach at most %(limit)s documents.", limit=limit))
        self.uploads = [read_document(storage) for storage in files]

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        # Checked here: Optional() on each field stops its own validators when empty.
        if not self.patient_phone.data and not self.patient_email.data:
            self.patient_phone.errors = [
                *self.patient_phone.errors,
                gettext("Give a phone number or an email address for the patient."),
            ]
            valid = False
        return self.read_item_documents() and valid


class StaffReferralForm(ReferralForm):
    """Staff entering a referral that came by phone, fax or email."""

    partner = SelectField(
        _l("Referring partner"), validators=[DataRequired(_l("Choose the partner."))]
    )
    source_channel = SelectField(
        _l("How did the referral arrive?"),
        choices=[
            (Channel.PHONE.value, _l("Phone")),
            (Channel.FAX.value, _l("Fax")),
            (Channel.EMAIL.value, _l("Email")),
            (Channel.STAFF.value, _l("Other (entered by staff)")),
        ],
        validators=[DataRequired()],
    )


def referral_form_class(service_line: ServiceLine | None, *, for_staff: bool) -> type[ReferralForm]:
    """The form class with one field per required item of `service_line`."""
    base = StaffReferralForm if for_staff else ReferralForm
    fields: dict[str, Field] = {}
    for item in service_line.required_items if service_line else []:
        if item.kind is ItemKind.DOCUMENT:
            fields[f"item_{item.id}"] = FileField(item.label, description=item.help_text)
        else:
            fields[f"item_{item.id}"] = TextAreaField(
                item.label,
                description=item.help_text,
                filters=[stripped],
                validators=[Optional(), Length(max=2000)],
            )
    return type("ReferralFormForServiceLine", (base,), fields)


# --- Shared by the action forms (portal/referrals/actions.py) and the answer form ------


class VersionedForm(PortalForm):
    """Carries the version of the referral the user saw, to detect conflicts, and the
    last timeline event they saw, to show them what changed if one happens."""

    version = IntegerField(widget=HiddenField.widget, validators=[InputRequired()])
    seen_event = IntegerField(
        widget=HiddenField.widget, validators=[Optional(), NumberRange(min=0, max=BIGGEST_ID)]
    )

    def keep_for_retry(self, version: int, last_event_id: int) -> None:
        """After a conflict: what the user typed stays, the hidden state moves on, so
        submitting again acts on the referral as it is now."""
        for field, value in ((self.version, version), (self.seen_event, last_event_id)):
            field.data, field.raw_data = value, [str(value)]

class OtherReasonMixin:
    """A list of reasons plus "other": `reason` and `other_reason` fields."""

    def validate(self, extra_validators=None) -> bool:
        # Here and not as validate_other_reason: that field is Optional(), which ends its
        # validation when it is empty, so an inline check would never see "other" alone.
        valid = super().validate(extra_validators)
        if self.reason.data == "other" and not self.other_reason.data:
            self.other_reason.errors = [
                *self.other_reason.errors,
                gettext("Describe the other reason."),
            ]
            return False
        return valid

    @property
    def reason_text(self) -> str:
        return self.other_reason.data if self.reason.data == "other" else self.reason.data


def reason_choices(reasons: Mapping[str, str], prompt: str) -> list[tuple[str, str]]:
    """The choices of a reasons list: `reasons` maps what is recorded (the English words)
    to what the list shows (marked for translation)."""
    return [("", prompt)] + list(reasons.items()) + [("other", _l("Other"))]


class BreachReasonForm(OtherReasonMixin, PortalForm):
    reason = SelectField(
        _l("Why was the target missed?"),
        choices=reason_choices(BREACH_REASONS, _l("Choose a reason")),
        validators=[DataRequired(_l("Choose a reason."))],
    )
    other_reason = StringField(
        _l("Other reason"), filters=[stripped], validators=[Optional(), Length(max=200)]
    )


class AnswerInfoForm(ItemFieldsMixin, VersionedForm):
    """The partner's answer; `answer_form_class` adds one field per open item."""

    # Shown whole on the timeline, after "Message from the referring office: ".
    message = TextAreaField(
        _l("Anything else to tell intake (optional)"),
        filters=[stripped],
        validators=[Optional(), Length(max=260)],
    )

    def __init__(self, *args, open_items=(), **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.open_items = list(open_items)
        self.item_uploads: dict[int, Upload] = {}

    def item_fields(self):
        return [(item, self[f"item_{item.id}"]) for item in self.open_items]

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        return self.read_item_documents() and valid


def answer_form_class(open_items) -> type[AnswerInfoForm]:
    fields: dict[str, Field] = {}
    for item in open_items:
        if item.kind is ItemKind.DOCUMENT:
            fields[f"item_{item.id}"] = FileField(item.label, description=ACCEPTED_DESCRIPTION)
        else:
            fields[f"item_{item.id}"] = TextAreaField(
                item.label, filters=[stripped], validators=[Optional(), Length(max=2000)]
            )
    return type("AnswerInfoFormForItems", (AnswerInfoForm,), fields)
