"""Every action on a referral, each declared once: read this file to know what any role
may do from any status, and what happens when they do.

An `Action` is the whole unit: its name and label, the roles that may take it, the
statuses it starts from and where each leads (`moves`), what the timeline and the
partner see, whether the partner is told, the form a person fills in, the typed
command the form builds and the service that carries it out. The action buttons and
forms on the referral page, the `/referrals/<ref>/actions/<name>` route, permission
checks (`workflow.check_transition`), the status page of the docs and the tests all
read `ACTIONS`. Clocks follow statuses (portal/sla/clocks.py); milestones and the
closing of information requests are done by `workflow.apply_transition` for every
action alike.

Adding an action: a command, a form whose `command()` builds it, a service (here, if it
is not already one in services.py), and its `Action(...)` line below.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from wtforms import (
    DateField,
    RadioField,
    SelectField,
    SelectMultipleField,
    StringField,
    TextAreaField,
    TimeField,
)
from wtforms.validators import DataRequired, InputRequired, Length, Optional
from wtforms.widgets import CheckboxInput, ListWidget

from portal.localtime import local_to_utc
from portal.models import (
    OPEN_STATUSES,
    AppointmentMode,
    ContactMethod,
    OutreachResult,
    Referral,
    ReferralEvent,
    Role,
    Status,
    User,
)
from portal.patients.services import (
    Slot,
    locked_out_reason,
    reissue_patient_link,
    send_next_step_link,
)
from portal.referrals import services
from portal.referrals.forms import (
    OtherReasonMixin,
    VersionedForm,
    item_labels,
    item_labels_fit,
    reason_choices,
    stripped,
)
from portal.referrals.needs_info import request_information
from portal.referrals.workflow import Transition, TransitionRefused, apply_transition, declare

S = Status
STAFF_WHO_NOTE = frozenset({Role.INTAKE, Role.CLINICAL, Role.PARTNER_SUCCESS})


@dataclass(frozen=True)
class Action(Transition):
    """A transition people take through a form (system transitions have no form)."""

    form: type[VersionedForm] | None = None
    # (referral, actor, command, expected_version) -> the timeline event
    service: Callable[..., ReferralEvent] | None = None
    done: str = ""  # the confirmation once it worked (marked with lazy_gettext)
    warning: bool = False  # the button looks like what it is: hard to undo


def perform(
    action: Action, referral: Referral, actor: User, form: VersionedForm
) -> ReferralEvent:
    """Carry out `action` with what `form` holds (the form has validated)."""
    command = form.command()
    arguments = {f.name: getattr(command, f.name) for f in fields(command)}
    return action.service(referral, actor, expected_version=form.version.data, **arguments)


def _stay(*statuses: Status) -> dict[Status, Status]:
    return {status: status for status in statuses}


# --- Commands: what each action needs, typed ------------------------------------------


@dataclass(frozen=True)
class WithNote:
    note: str = ""


@dataclass(frozen=True)
class Accept:
    provider: str
    note: str = ""


@dataclass(frozen=True)
class Decline:
    reason: str
    note: str = ""


@dataclass(frozen=True)
class Redirect:
    destination: str
    note: str = ""


@dataclass(frozen=True)
class LogOutreach:
    channel: ContactMethod
    result: OutreachResult
    note: str = ""


@dataclass(frozen=True)
class Schedule:
    appointment_at: datetime
    mode: AppointmentMode
    note: str = ""


@dataclass(frozen=True)
class Withdraw:
    reason: str = ""


@dataclass(frozen=True)
class RequestInfo:
    required_item_ids: list[int]
    other_documents: list[str]
    other_questions: list[str]
    message: str = ""
    note: str = ""


@dataclass(frozen=True)
class SendPatientLink:
    via: ContactMethod
    slots: list[Slot]
    note: str = ""


@dataclass(frozen=True)
class ShareFollowUp:
    message: str


@dataclass(frozen=True)
class AddNote:
    note: str


# --- Forms ------------------------------------------------------------------------------


def staff_note_field(max_length: int = 2000, *, required: bool = False) -> TextAreaField:
    return TextAreaField(
        _l("Staff note (never shown to the referring office)"),
        filters=[stripped],
        validators=[
            DataRequired(_l("Write the note.")) if required else Optional(),
            Length(max=max_length),
        ],
    )


class ActionForm(VersionedForm):
    """A staff action with nothing to fill in but an optional staff-only note."""

    note = staff_note_field()

    @property
    def note_text(self) -> str:
        return self.note.data or ""

    def command(self) -> WithNote:
        return WithNote(self.note_text)


class AcceptForm(ActionForm):
    provider = StringField(
        _l("Assigned provider"),
        filters=[stripped],
        validators=[
            DataRequired(_l("Name the provider the patient is assigned to.")),
            Length(max=120),
        ],
    )

    def command(self) -> Accept:
        return Accept(self.provider.data, self.note_text)


# What is recorded (the English, as it always was) -> what the list shows.
DECLINE_REASONS = {
    "Does not meet the eligibility criteria": _l("Does not meet the eligibility criteria"),
    "Service not offered for this condition": _l("Service not offered for this condition"),
    "Needs a higher level of care": _l("Needs a higher level of care"),
    "Outside our service area": _l("Outside our service area"),
    "Insurance not accepted": _l("Insurance not accepted"),
}


class DeclineForm(OtherReasonMixin, ActionForm):
    reason = SelectField(
        _l("Reason"),
        choices=reason_choices(DECLINE_REASONS, _l("Choose a reason")),
        validators=[DataRequired(_l("Choose why the referral is declined."))],
    )
    other_reason = StringField(
        _l("Other reason"), filters=[stripped], validators=[Optional(), Length(max=200)]
    )

    def command(self) -> Decline:
        return Decline(self.reason_text, self.note_text)


class RedirectForm(ActionForm):
    destination = StringField(
        _l("Redirect to"),
        description=_l("The service or practice the patient is better served by."),
        filters=[stripped],
        validators=[DataRequired(_l("Say where the referral is redirected.")), Length(max=200)],
    )

    def command(self) -> Redirect:
        return Redirect(self.destination.data, self.note_text)


class OutreachForm(ActionForm):
    note = staff_note_field(max_length=500)  # outreach_attempt.note holds 500
    channel = SelectField(
        _l("Contacted by"),
        choices=[
            (ContactMethod.PHONE.value, _l("Phone")),
            (ContactMethod.SMS.value, _l("SMS")),
            (ContactMethod.EMAIL.value, _l("Email")),
        ],
        validators=[DataRequired()],
    )
    result = SelectField(
        _l("Result"),
        choices=[
            (OutreachResult.REACHED.value, _l("Reached the patient")),
            (OutreachResult.NO_ANSWER.value, _l("No answer")),
            (OutreachResult.LEFT_MESSAGE.value, _l("Left a message")),
            (OutreachResult.WRONG_NUMBER.value, _l("Wrong number or address")),
        ],
        validators=[DataRequired()],
    )

    def command(self) -> LogOutreach:
        return LogOutreach(
            ContactMethod(self.channel.data), OutreachResult(self.result.data), self.note_text
        )


class ScheduleForm(ActionForm):
    appointment_date = DateField(
        _l("Date"), validators=[InputRequired(_l("Choose the visit date."))]
    )
    appointment_time = TimeField(
        _l("Time"), validators=[InputRequired(_l("Choose the visit time."))]
    )
    mode = RadioField(
        _l("Visit type"),
        choices=[
            (AppointmentMode.VIDEO.value, _l("Video")),
            (AppointmentMode.PHONE.value, _l("Phone")),
        ],
        default=AppointmentMode.VIDEO.value,
        validators=[InputRequired(_l("Choose video or phone."))],
    )

    def command(self) -> Schedule:
        return Schedule(
            local_to_utc(self.appointment_date.data, self.appointment_time.data, checked=True),
            AppointmentMode(self.mode.data),
            self.note_text,
        )


class WithdrawForm(VersionedForm):
    reason = StringField(
        _l("Reason (optional)"), filters=[stripped], validators=[Optional(), Length(max=200)]
    )

    def command(self) -> Withdraw:
        return Withdraw(self.reason.data or "")


class NoteForm(ActionForm):
    note = staff_note_field(required=True)

    def command(self) -> AddNote:
        return AddNote(self.note_text)


class MultiCheckboxField(SelectMultipleField):
    """A list of checkboxes, each with its own label."""

    widget = ListWidget(prefix_label=False)
    option_widget = CheckboxInput()


class RequestInfoForm(ActionForm):
    required_items = MultiCheckboxField(_l("Required items to ask for"), coerce=int)
    other_documents = TextAreaField(
        _l("Other documents needed"),
        description=_l("One per line."),
        filters=[stripped],
        validators=[Optional(), Length(max=1000), item_labels_fit],
    )
    other_questions = TextAreaField(
        _l("Other questions"),
        description=_l("One per line."),
        filters=[stripped],
        validators=[Optional(), Length(max=1000), item_labels_fit],
    )
    message = TextAreaField(
        _l("Message to the referring office"),
        filters=[stripped],
        validators=[Optional(), Length(max=1000)],
    )

    def prepare(self, referral: Referral) -> None:
        """Offer the service line's items, ticking those still missing."""
        self.required_items.choices = [
            (item.id, item.label) for item in referral.service_line.required_items
        ]
        if self.required_items.data is None:
            missing = {i.required_item_id for i in referral.missing_items}
            self.required_items.data = [
                item.id for item in referral.service_line.required_items if item.id in missing
            ]

    def command(self) -> RequestInfo:
        return RequestInfo(
            self.required_items.data or [],
            item_labels(self.other_documents.data),
            item_labels(self.other_questions.data),
            self.message.data or "",
            self.note_text,
        )


class ShareFollowUpForm(VersionedForm):
    message = TextAreaField(
        _l("Follow-up note for the referring office"),
        description=_l(
            "Shown to the referring office. Only possible with the patient's consent."
        ),
        filters=[stripped],
        validators=[DataRequired(_l("Write the note.")), Length(max=280)],
    )

    def command(self) -> ShareFollowUp:
        return ShareFollowUp(self.message.data)


class SendLinkForm(ActionForm):
    via = RadioField(
        _l("Send by"),
        choices=[
            (ContactMethod.SMS.value, _l("Text message")),
            (ContactMethod.EMAIL.value, _l("Email")),
        ],
        validators=[InputRequired(_l("Choose text message or email."))],
    )
    mode = RadioField(
        _l("Visit type for the offered times"),
        choices=[
            (AppointmentMode.VIDEO.value, _l("Video")),
            (AppointmentMode.PHONE.value, _l("Phone")),
        ],
        default=AppointmentMode.VIDEO.value,
        validators=[InputRequired()],
    )
    slot_1_date = DateField(_l("First time offered: date"), validators=[Optional()])
    slot_1_time = TimeField(_l("First time offered: time"), validators=[Optional()])
    slot_2_date = DateField(_l("Second time: date"), validators=[Optional()])
    slot_2_time = TimeField(_l("Second time: time"), validators=[Optional()])
    slot_3_date = DateField(_l("Third time: date"), validators=[Optional()])
    slot_3_time = TimeField(_l("Third time: time"), validators=[Optional()])

    def prepare(self, referral: Referral) -> None:
        if self.via.data is None:
            self.via.data = (
                ContactMethod.EMAIL.value
                if referral.preferred_contact is ContactMethod.EMAIL
                else ContactMethod.SMS.value
            )

    def offered(self) -> list[datetime]:
        times = []
        for index in (1, 2, 3):
            day, clock = self[f"slot_{index}_date"].data, self[f"slot_{index}_time"].data
            if day and clock:
                times.append(local_to_utc(day, clock, checked=True))
        return times

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        for index in (1, 2, 3):
            day, clock = self[f"slot_{index}_date"], self[f"slot_{index}_time"]
            if bool(day.data) != bool(clock.data):
                clock.errors = [*clock.errors, gettext("Give both a date and a time, or neither.")]
                valid = False
        return valid

    def command(self) -> SendPatientLink:
        mode = AppointmentMode(self.mode.data)
        return SendPatientLink(
            ContactMethod(self.via.data), [Slot(t, mode) for t in self.offered()], self.note_text
        )


# --- Services that live with their action -------------------------------------------------


def cancel_appointment(
    referral: Referral, actor: User, *, expected_version: int | None, note: str = ""
) -> ReferralEvent:
    """The visit is off (the patient or the practice cancelled): back to accepted, where
    intake reaches the patient again and books another time."""
    if referral.appointment_at is None:
        raise TransitionRefused(gettext("There is no appointment to cancel."))
    return apply_transition(
        referral,
        "cancel_appointment",
        actor,
        expected_version=expected_version,
        staff_note=note,
        changes={
            "appointment_at": None,
            "appointment_mode": None,
            "appointment_reminder_sent_at": None,
        },
    )


# --- The declarations -------------------------------------------------------------------

ACTIONS: dict[str, Action] = {
    action.action: declare(action)
    for action in (
        Action(
            "first_touch",
            _l("Record first touch"),
            {S.SUBMITTED: S.IN_REVIEW, S.NEEDS_INFO: S.NEEDS_INFO},
            frozenset({Role.INTAKE}),
            partner_visible=True,
            summary="Intake has picked up the referral",
            guard=services.first_touch_recorded,
            form=ActionForm,
            service=services.record_first_touch,
            done=_l("First touch recorded."),
        ),
        Action(
            "resume_review",
            _l("Information received: back to review"),
            {S.NEEDS_INFO: S.IN_REVIEW},
            frozenset({Role.INTAKE}),
            partner_visible=True,
            summary="The missing information was received; review continues",
            form=ActionForm,
            service=services.resume_review,
            done=_l("Back in review."),
        ),
        Action(
            "accept",
            _l("Accept"),
            {S.IN_REVIEW: S.ACCEPTED},
            frozenset({Role.CLINICAL}),
            partner_visible=True,
            summary="Accepted",
            notify_partner=True,
            form=AcceptForm,
            service=services.accept,
            done=_l("Referral accepted."),
        ),
        Action(
            "decline",
            _l("Decline as not eligible"),
            {S.IN_REVIEW: S.DECLINED},
            frozenset({Role.CLINICAL}),
            partner_visible=True,
            summary="Declined: not eligible",
            notify_partner=True,
            form=DeclineForm,
            service=services.decline,
            done=_l("Referral declined."),
            warning=True,
        ),
        Action(
            "redirect",
            _l("Redirect"),
            {S.IN_REVIEW: S.REDIRECTED},
            frozenset({Role.CLINICAL}),
            partner_visible=True,
            summary="Redirected to another service",
            notify_partner=True,
            form=RedirectForm,
            service=services.redirect_referral,
            done=_l("Referral redirected."),
        ),
        Action(
            "log_outreach",
            _l("Log a contact attempt"),
            _stay(S.ACCEPTED, S.SCHEDULED, S.NO_SHOW),
            frozenset({Role.INTAKE}),
            partner_visible=False,
            summary="Contact attempt",
            form=OutreachForm,
            service=services.log_outreach,
            done=_l("Contact attempt logged."),
        ),
        Action(
            "schedule",
            _l("Schedule the first visit"),
            {S.ACCEPTED: S.SCHEDULED, S.SCHEDULED: S.SCHEDULED, S.NO_SHOW: S.SCHEDULED},
            frozenset({Role.INTAKE}),
            partner_visible=True,
            summary="First visit scheduled",
            notify_partner=True,
            form=ScheduleForm,
            service=services.schedule,
            done=_l("Visit scheduled."),
        ),
        Action(
            "cancel_appointment",
            _l("Cancel the appointment"),
            {S.SCHEDULED: S.ACCEPTED},
            frozenset({Role.INTAKE}),
            partner_visible=True,
            summary="The first visit was cancelled; we will arrange another time",
            notify_partner=True,
            form=ActionForm,
            service=cancel_appointment,
            done=_l("Appointment cancelled: book another time."),
            warning=True,
        ),
        Action(
            "record_completed",
            _l("Record visit completed"),
            {S.SCHEDULED: S.COMPLETED},
            frozenset({Role.INTAKE}),
            partner_visible=True,
            summary="First visit completed: the patient has started care",
            notify_partner=True,
            form=ActionForm,
            service=services.record_completed,
            done=_l("Visit recorded as completed."),
        ),
        Action(
            "record_no_show",
            _l("Record no-show"),
            {S.SCHEDULED: S.NO_SHOW},
            frozenset({Role.INTAKE}),
            partner_visible=True,
            summary="The patient did not attend the first visit",
            form=ActionForm,
            service=services.record_no_show,
            done=_l("No-show recorded."),
            warning=True,
        ),
        Action(
            "mark_unreachable",
            _l("Mark patient unreachable"),
            {S.ACCEPTED: S.UNREACHABLE, S.NO_SHOW: S.UNREACHABLE},
            frozenset({Role.INTAKE}),
            partner_visible=True,
            summary="Closed: we could not reach the patient",
            notify_partner=True,
            form=ActionForm,
            service=services.mark_unreachable,
            done=_l("Referral closed: patient unreachable."),
            warning=True,
        ),
        Action(
            "withdraw",
            _l("Withdraw the referral"),
            {status: S.WITHDRAWN for status in OPEN_STATUSES},
            frozenset({Role.PARTNER}),
            partner_visible=True,
            summary="Withdrawn by the referring office",
            form=WithdrawForm,
            service=services.withdraw,
            done=_l("Referral withdrawn."),
            warning=True,
        ),
        Action(
            "request_info",
            _l("Request missing information"),
            {S.SUBMITTED: S.NEEDS_INFO, S.IN_REVIEW: S.NEEDS_INFO, S.NEEDS_INFO: S.NEEDS_INFO},
            frozenset({Role.INTAKE}),
            partner_visible=True,
            summary="More information needed",
            notify_partner=True,
            form=RequestInfoForm,
            service=request_information,
            done=_l("Request sent to the referring office."),
        ),
        # The partner answers on the referral page's own panel (portal/referrals/routes.py
        # answer_information_request): a form of its own, with a field per open item.
        Action(
            "answer_info",
            _l("Send the missing information"),
            {S.NEEDS_INFO: frozenset({S.NEEDS_INFO, S.SUBMITTED, S.IN_REVIEW})},
            frozenset({Role.PARTNER}),
            partner_visible=True,
            summary="Information sent by the referring office",
        ),
        Action(
            "send_patient_link",
            _l("Send the patient their next step"),
            _stay(S.ACCEPTED),
            frozenset({Role.INTAKE}),
            partner_visible=True,
            summary="We sent the patient a link to confirm their next step",
            form=SendLinkForm,
            service=send_next_step_link,
            done=_l("Link sent to the patient."),
        ),
        # From the "patient locked out" mark in the queue and on the referral page.
        Action(
            "reissue_patient_link",
            _l("Reissue the patient's link"),
            _stay(S.ACCEPTED),
            frozenset({Role.INTAKE}),
            partner_visible=False,
            summary="We sent the patient a new link after they were locked out",
            guard=locked_out_reason,
            form=ActionForm,
            service=reissue_patient_link,
            done=_l("A new link went to the patient, with the times still ahead."),
        ),
        # Done by the portal: the patient's answer on their signed link, and a referral
        # that arrived without its required items.
        Action(
            "patient_answered",
            _l("Patient answered"),
            {S.ACCEPTED: frozenset({S.ACCEPTED, S.SCHEDULED, S.WITHDRAWN})},
            frozenset(),
            partner_visible=True,
            summary="Patient confirmed next step",
            system=True,
        ),
        Action(
            "incomplete_at_submission",
            _l("Ask for the missing items"),
            {S.SUBMITTED: S.NEEDS_INFO},
            frozenset(),
            partner_visible=True,
            summary="More information needed",
            notify_partner=True,
            system=True,
        ),
        Action(
            "share_follow_up",
            _l("Share a follow-up note with the referring office"),
            _stay(*Status),
            STAFF_WHO_NOTE,
            partner_visible=True,
            summary="Follow-up note from the care team",
            notify_partner=True,
            form=ShareFollowUpForm,
            service=services.share_follow_up,
            done=_l("Follow-up note shared with the referring office."),
        ),
        Action(
            "add_note",
            _l("Add a staff note"),
            _stay(*Status),
            STAFF_WHO_NOTE,
            partner_visible=False,
            summary="Staff note",
            form=NoteForm,
            service=services.add_staff_note,
            done=_l("Note added."),
        ),
    )
}
del S


def form_actions() -> dict[str, Action]:
    """The actions people take through the referral page's action forms."""
    return {name: action for name, action in ACTIONS.items() if action.form is not None}


def new_action_form(action: Action, referral: Referral, **kwargs: Any) -> VersionedForm:
    """`action`'s form for `referral`, its field ids unique on a page of many forms."""
    form = action.form(**kwargs)
    if hasattr(form, "prepare"):
        form.prepare(referral)
    for field in form:
        field.id = f"{action.action}-{field.name}"
        field.label.field_id = field.id
    return form
