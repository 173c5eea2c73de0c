"""Every text field is bounded by the form, and the database column agrees.

A new form or text field fails here until it declares a Length and says where its
value is stored, so a value the form accepts can never be too long for its column
(PostgreSQL refuses it with an error; SQLite would store it silently).
"""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import String
from werkzeug.datastructures import MultiDict
from wtforms import DateField, IntegerField, StringField, TextAreaField
from wtforms.fields.core import UnboundField

import portal.accounts.forms
import portal.admin.fhir_clients
import portal.admin.forms
import portal.patients.forms
import portal.referrals.actions
import portal.referrals.forms
import portal.referrals.ratings  # noqa: F401 - imported for their form classes
from portal import create_app
from portal.config import TestConfig
from portal.forms import PortalForm, boundary_refusal
from portal.models import Base

NOT_STORED = None
# (form class, field) -> "table.column" it is stored in (with the characters a timeline
# headline puts before it, "table.column+prefix"), or NOT_STORED.
WHERE_STORED = {
    ("SignInForm", "email"): "sign_in_attempt.email",
    ("SignInForm", "password"): NOT_STORED,
    ("SecondFactorForm", "code"): NOT_STORED,
    ("NewPasswordForm", "password"): NOT_STORED,  # only its argon2 hash
    ("NewPasswordForm", "confirm"): NOT_STORED,
    ("ChangePasswordForm", "current_password"): NOT_STORED,
    ("ForgotPasswordForm", "email"): NOT_STORED,  # looked up, never stored
    ("ConfirmWithCodeForm", "code"): NOT_STORED,
    ("ReferralForm", "referring_provider_name"): "referral.referring_provider_name",
    ("ReferralForm", "patient_first_name"): "referral.patient_first_name",
    ("ReferralForm", "patient_last_name"): "referral.patient_last_name",
    ("ReferralForm", "patient_email"): "referral.patient_email",
    ("ReferralForm", "reason"): "referral.reason",
    ("ReferralForm", "clinical_context"): "referral.clinical_context",
    ("ReferralForm", "source_code"): "referral.source_code",
    ("ReferralForm", "submission_token"): "referral.submission_token",
    ("ActionForm", "note"): "referral_event.staff_note",
    ("OutreachForm", "note"): "outreach_attempt.note",
    ("NoteForm", "note"): "referral_event.staff_note",
    ("AcceptForm", "provider"): "referral.assigned_provider",
    ("DeclineForm", "other_reason"): "referral.decline_reason",
    ("RedirectForm", "destination"): "referral.redirect_destination",
    ("RequestInfoForm", "message"): "info_request.message",
    ("WithdrawForm", "reason"): "referral_event.summary+35",  # "Withdrawn by the … office: "
    ("BreachReasonForm", "other_reason"): "sla_clock.breach_reason",
    ("AnswerInfoForm", "message"): "referral_event.summary+35",  # PARTNER_MESSAGE_PREFIX
    ("PartnerForm", "name"): "partner.name",
    ("PartnerForm", "specialty"): "partner.specialty",
    ("PartnerForm", "referral_contact_name"): "partner.referral_contact_name",
    ("PartnerForm", "referral_contact_email"): "partner.referral_contact_email",
    ("PartnerForm", "referral_contact_phone"): "partner.referral_contact_phone",
    ("PartnerInviteForm", "full_name"): "user_account.full_name",
    ("PartnerInviteForm", "email"): "user_account.email",
    ("ServiceLineForm", "name"): "service_line.name",
    ("ServiceLineForm", "description"): "service_line.description",
    ("ServiceLineForm", "eligibility_criteria"): "service_line.eligibility_criteria",
    ("ServiceLineForm", "packet_treats"): "service_line.packet_treats",
    ("ServiceLineForm", "packet_how_to_submit"): "service_line.packet_how_to_submit",
    ("ServiceLineForm", "packet_after"): "service_line.packet_after",
    ("ServiceLineForm", "packet_contacts"): "service_line.packet_contacts",
    ("ServiceLineForm", "fhir_system"): "service_line.fhir_system",
    ("ServiceLineForm", "fhir_code"): "service_line.fhir_code",
    ("FhirClientForm", "name"): "fhir_client.name",
    ("FhirKeysForm", "jwks"): "fhir_client.jwks",  # parsed and checked (JSON column)
    ("FhirKeysForm", "jwks_url"): "fhir_client.jwks_url",
    ("BusinessHoursForm", "time_zone"): "business_hours.time_zone",
    ("HolidayForm", "name"): "holiday.name",
    ("NextStepForm", "reason"): "referral_event.staff_note",
    ("ShareFollowUpForm", "message"): "referral_event.summary+16",  # "Follow-up note: "
    ("ProcessRatingForm", "comment"): "process_rating.comment",
}
# Stored after a transformation that bounds them more tightly than the form does.
TRANSFORMED = {
    ("ReferralForm", "referring_provider_npi"): "valid_npi keeps the 10 digits (referral.…_npi)",
    ("ReferralForm", "patient_phone"): "E.164, at most 16 characters (referral.patient_phone)",
    ("RequestInfoForm", "other_documents"): "one referral_item.label a line (item_labels_fit)",
    ("RequestInfoForm", "other_questions"): "one referral_item.label a line (item_labels_fit)",
    ("ServiceLineForm", "required_documents"): "one required_item.label a line",
    ("ServiceLineForm", "required_answers"): "one required_item.label a line",
    ("DateOfBirthForm", "day"): "digits, compared with referral.patient_date_of_birth",
    ("DateOfBirthForm", "month"): "digits, compared with referral.patient_date_of_birth",
    ("DateOfBirthForm", "year"): "digits, compared with referral.patient_date_of_birth",
    ("PartnerEditForm", "loaded"): "JSON of the partner columns, compared, never stored",
}


def all_form_classes() -> list[type[PortalForm]]:
    found, pending = [], [PortalForm]
    while pending:
        for subclass in pending.pop().__subclasses__():
            if subclass.__module__.startswith("portal."):
                found.append(subclass)
            pending.append(subclass)
    return found


def declared_text_fields() -> dict[tuple[str, str], UnboundField]:
    """(the class that declares it, name) -> field, for every text field of every form."""
    fields = {}
    for form_class in all_form_classes():
        for name, value in vars(form_class).items():
            if isinstance(value, UnboundField) and issubclass(value.field_class, StringField):
                fields[(form_class.__name__, name)] = value
    return fields


def max_length(field: UnboundField) -> int | None:
    limits = [v.max for v in field.kwargs.get("validators", []) if hasattr(v, "max")]
    return min(limits) if limits else None


def column_length(where: str) -> int | None:
    """The characters left for the field's value in its column (None: unbounded)."""
    place, _, prefix = where.partition("+")
    table, column = place.split(".")
    column_type = Base.metadata.tables[table].columns[column].type
    if not isinstance(column_type, String) or column_type.length is None:
        return None
    return column_type.length - int(prefix or 0)


def test_every_text_field_declares_its_maximum_length():
    unbounded = [key for key, field in declared_text_fields().items() if not max_length(field)]
    assert not unbounded, f"add Length(max=...) to {unbounded}"


def test_every_text_field_says_where_it_is_stored():
    unknown = set(declared_text_fields()) - set(WHERE_STORED) - set(TRANSFORMED)
    assert not unknown, f"add these to WHERE_STORED or TRANSFORMED: {sorted(unknown)}"


def test_no_form_accepts_more_than_its_column_holds():
    fields = declared_text_fields()
    too_long = []
    for key, where in WHERE_STORED.items():
        assert key in fields, f"{key} is no longer a text field: update WHERE_STORED"
        if where is NOT_STORED:
            continue
        limit = column_length(where)
        if limit is not None and max_length(fields[key]) > limit:
            too_long.append(f"{key}: form {max_length(fields[key])}, {where} {limit}")
    assert not too_long, too_long


@pytest.fixture(scope="module")
def request_context():
    app = create_app(TestConfig, DATABASE_URL="sqlite://", WTF_CSRF_ENABLED=False)
    with app.test_request_context(method="POST"):
        yield


class Sample(PortalForm):
    line = StringField(validators=[])
    text = TextAreaField()
    count = IntegerField()
    day = DateField()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("line", "a\x00b", "Remove the control characters"),
        ("line", "two\nlines", "line breaks"),
        ("line", "\u202egnp.exe", "invisible formatting"),
        ("line", "x" * 1001, "Use at most 1,000 characters (this has 1,001)"),
        ("text", "a\x07b", "Remove the control or invisible formatting characters"),
        ("count", "2147483648", "far too large"),  # past an INTEGER column
        ("count", "9223372036854775808", "far too large"),
        ("count", "-9223372036854775808", "far too large"),
        ("day", "9999-12-31", "between 1800 and 2199"),
        ("day", "0001-01-01", "between 1800 and 2199"),
    ],
)
def test_the_base_form_refuses_what_no_field_may_hold(request_context, field, value, message):
    form = Sample(formdata=MultiDict({field: value}))
    assert not form.validate()
    assert any(message in error for error in form[field].errors), form.errors


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("line", "José Núñez-O'Brien"),
        ("line", "👩‍⚕️ Dr. Lee"),  # a zero-width joiner is allowed
        ("text", "first line\r\nsecond line\tindented"),
        ("count", "2147483647"),  # the largest an INTEGER column holds
        ("day", date(2026, 11, 30).isoformat()),
    ],
)
def test_the_base_form_accepts_ordinary_text_numbers_and_dates(request_context, field, value):
    form = Sample(formdata=MultiDict({field: value}))
    form.validate()
    assert boundary_refusal(form[field]) is None
