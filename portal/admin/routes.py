"""Admin and partner-success pages: partners, users, service lines, audit log."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext, ngettext
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import selectinload

from portal.accounts.forms import RoleForm
from portal.accounts.services import (
    AccountChangeRefused,
    InvitationInvalid,
    change_role,
    invite_user,
    require_second_factor_for_partner,
    reset_second_factor,
    set_enabled,
    set_partner_active,
)
from portal.accounts.sessions import (
    active_sessions,
    current_session,
    end_all_sessions,
    end_session,
    roles_required,
)
from portal.admin.forms import (
    HolidayForm,
    InviteForm,
    PartnerEditForm,
    PartnerForm,
    PartnerInviteForm,
    ServiceLineForm,
    business_hours_form_class,
    targets_form_class,
)
from portal.admin.partners import DETAILS as PARTNER_DETAILS
from portal.admin.partners import (
    LoadedValuesInvalid,
    NameTaken,
    loaded_field_value,
    parse_loaded,
)
from portal.admin.partners import save_details as save_partner_details
from portal.admin.service_lines import PacketText, fhir_coding_taken, save_service_line
from portal.admin.sla_settings import (
    TARGET_STAGES,
    WEEKDAYS,
    HolidayRefused,
    add_holiday,
    remove_holiday,
    save_business_hours,
    save_targets,
    upcoming_holidays,
)
from portal.auditing import record_audit
from portal.extensions import db
from portal.models import (
    AuditEntry,
    FhirClient,
    Holiday,
    ItemKind,
    MessageStatus,
    OutboxMessage,
    Partner,
    Referral,
    Role,
    ServiceLine,
    Urgency,
    User,
    UserSession,
)
from portal.notifications.delivery import retry_dead_message
from portal.notifications.outbox import portal_url
from portal.notifications.referrals import send_invitation
from portal.pagination import one_page
from portal.query_args import page_arg, text_arg
from portal.referrals.forms import item_labels
from portal.sla.clocks import load_calendar, target_minutes

bp = Blueprint("admin", __name__, url_prefix="/admin")

PARTNER_MANAGERS = (Role.PARTNER_SUCCESS, Role.ADMIN)
AUDIT_PAGE_SIZE = 100


@bp.get("/partners")
@roles_required(*PARTNER_MANAGERS)
def partners():
    """Every partner with its referral count."""
    counts = dict(
        db.session.execute(
            select(Referral.partner_id, func.count(Referral.id)).group_by(Referral.partner_id)
        ).all()
    )
    rows = db.session.scalars(select(Partner).order_by(Partner.name)).all()
    return render_template("admin/partners.html", partners=rows, counts=counts)


@bp.route("/partners/new", methods=["GET", "POST"])
@roles_required(*PARTNER_MANAGERS)
def new_partner():
    """Create a referring partner."""
    form = PartnerForm()
    if form.validate_on_submit():
        partner = Partner()
        form.populate_obj(partner)
        partner.referral_contact_email = partner.referral_contact_email.lower()
        db.session.add(partner)
        try:
            db.session.flush()
        except IntegrityError:
            db.session.rollback()
            form.name.errors.append(gettext("A partner with this name already exists."))
        else:
            record_audit(
                "partner.created", actor=current_user, target_type="partner", target_id=partner.id
            )
            db.session.commit()
            flash(
                gettext("Partner “%(name)s” created. Invite its users next.", name=partner.name),
                "success",
            )
            return redirect(url_for("admin.partner", partner_id=partner.id))
    return render_template("admin/partner_form.html", form=form), (
        422 if request.method == "POST" else 200
    )


@bp.route("/partners/<id:partner_id>", methods=["GET", "POST"])
@roles_required(*PARTNER_MANAGERS)
def partner(partner_id: int):
    """A partner's details and users; invite a new user for it."""
    record = _partner_or_404(partner_id)
    form = PartnerInviteForm()
    invitation_link = None
    if form.validate_on_submit():
        invitation_link = _invite(form, Role.PARTNER, record)
        if invitation_link:
            form = PartnerInviteForm(formdata=None)
    users = db.session.scalars(
        select(User)
        .where(
            User.partner_id == record.id,
            # A FHIR client's own user row is not a person (its page: admin/fhir_clients).
            ~exists().where(FhirClient.user_id == User.id),
        )
        .order_by(User.full_name)
    ).all()
    return render_template(
        "admin/partner.html",
        partner=record,
        users=users,
        form=form,
        invitation_link=invitation_link,
    ), 422 if form.errors else 200


@bp.route("/partners/<id:partner_id>/edit", methods=["GET", "POST"])
@roles_required(*PARTNER_MANAGERS)
def edit_partner(partner_id: int):
    """Change an office's name, specialty or designated referral contact."""
    record = _partner_or_404(partner_id)
    form = PartnerEditForm(obj=record)
    conflicting: tuple[str, ...] = ()
    if request.method == "GET":
        form.loaded.data = loaded_field_value(record)
    elif form.validate_on_submit():
        try:
            loaded = parse_loaded(form.loaded.data)
        except LoadedValuesInvalid:
            abort(400, gettext("This form was damaged on its way back. Open the page again."))
        wanted = {name: form[name].data or None for name in PARTNER_DETAILS}
        wanted["referral_contact_email"] = wanted["referral_contact_email"].lower()
        try:
            result = save_partner_details(record, loaded, wanted, by=current_user)
        except NameTaken:
            form.name.errors.append(gettext("A partner with this name already exists."))
        else:
            if not result.conflicting:
                db.session.commit()
                if result.changed:
                    saved = gettext("The details of “%(name)s” are saved.", name=record.name)
                    flash(saved, "success")
                else:
                    flash(gettext("Nothing was changed."), "info")
                return redirect(url_for("admin.partner", partner_id=partner_id))
            conflicting = result.conflicting
            db.session.commit()  # nothing written but the transaction's reads
            # Saving again now means saving over the new values, on purpose.
            form.loaded.data = loaded_field_value(record)
    status = 200 if request.method == "GET" else 409 if conflicting else 422
    return render_template(
        "admin/partner_form.html",
        form=form,
        partner=record,
        # Each detail changed under the editor, with its value now.
        conflicts=[(form[name].label.text, getattr(record, name)) for name in conflicting],
    ), status


def _invite(form: PartnerInviteForm, role: Role, partner: Partner | None) -> str | None:
    """Invite from a valid form: the one-time link, or None with the form's error set."""
    try:
        link = invite_user(
            email=form.email.data,
            full_name=form.full_name.data,
            role=role,
            partner=partner,
            invited_by=current_user,
        )
    except InvitationInvalid as invalid:
        form.email.errors.append(str(invalid))
        return None
    send_invitation(link.invitation.user, link.token)
    db.session.commit()
    flash(gettext("Invitation sent to %(email)s.", email=link.invitation.user.email), "success")
    return portal_url("accounts.accept", token=link.token)


@bp.route("/users", methods=["GET", "POST"])
@roles_required(Role.ADMIN)
def users():
    """Staff accounts; invite a new member of staff."""
    form = InviteForm()
    invitation_link = None
    if form.validate_on_submit():
        invitation_link = _invite(form, Role(form.role.data), None)
        if invitation_link:
            form = InviteForm(formdata=None)
    staff = db.session.scalars(
        select(User).where(User.partner_id.is_(None)).order_by(User.role, User.full_name)
    ).all()
    return render_template(
        "admin/users.html", users=staff, form=form, invitation_link=invitation_link
    ), 422 if form.errors else 200


def _account_or_404(user_id: int) -> User:
    # A FHIR client's user row is managed on the client's page, never as an account.
    user = db.session.scalar(
        select(User).where(User.id == user_id, ~exists().where(FhirClient.user_id == User.id))
    )
    if user is None:
        abort(404)
    return user


@bp.get("/users/<id:user_id>")
@roles_required(Role.ADMIN)
def user(user_id: int):
    """One account: its state, role, second factor and signed-in sessions."""
    account = _account_or_404(user_id)
    role_form = RoleForm(formdata=None, role=account.role.value)
    return render_template(
        "admin/user.html",
        account=account,
        role_form=role_form,
        sessions=active_sessions(account.id),
        current=current_session(),
    )


def _account_change(user_id: int, change, done: str):
    """Apply `change(account)` (an accounts service), commit, and go back to the user.
    `done` is the confirmation, marked with _l and holding %(name)s."""
    account = _account_or_404(user_id)
    try:
        change(account)
    except AccountChangeRefused as refused:
        db.session.rollback()
        flash(str(refused), "error")
    else:
        db.session.commit()
        flash(str(done) % {"name": account.full_name}, "success")
    return redirect(url_for("admin.user", user_id=user_id))


@bp.post("/users/<id:user_id>/disable")
@roles_required(Role.ADMIN)
def disable_user(user_id: int):
    """Disable an account: it cannot sign in, and its sessions end now."""
    return _account_change(
        user_id,
        lambda account: set_enabled(account, False, by=current_user),
        _l("%(name)s is disabled and signed out everywhere."),
    )


@bp.post("/users/<id:user_id>/enable")
@roles_required(Role.ADMIN)
def enable_user(user_id: int):
    """Let a disabled account sign in again."""
    return _account_change(
        user_id,
        lambda account: set_enabled(account, True, by=current_user),
        _l("%(name)s can sign in again."),
    )


@bp.post("/users/<id:user_id>/role")
@roles_required(Role.ADMIN)
def change_user_role(user_id: int):
    """Give a member of staff another role (their sessions end)."""
    form = RoleForm()
    if not form.validate():
        abort(400)
    return _account_change(
        user_id,
        lambda account: change_role(account, Role(form.role.data), by=current_user),
        _l("%(name)s has a new role and was signed out everywhere."),
    )


@bp.post("/users/<id:user_id>/second-factor/reset")
@roles_required(Role.ADMIN)
def reset_user_second_factor(user_id: int):
    """Clear a user's second factor (a lost phone); they set it up at next sign-in."""
    return _account_change(
        user_id,
        lambda account: reset_second_factor(account, by=current_user),
        _l("%(name)s's second factor was reset; they set it up again at their next sign-in."),
    )


@bp.post("/users/<id:user_id>/sessions/end-all")
@roles_required(Role.ADMIN)
def end_user_sessions(user_id: int):
    """Sign a user out everywhere."""
    return _account_change(
        user_id,
        lambda account: end_all_sessions(account, by=current_user, reason="ended_by_admin"),
        _l("%(name)s is signed out everywhere."),
    )


@bp.post("/users/<id:user_id>/sessions/<id:session_id>/end")
@roles_required(Role.ADMIN)
def end_user_session(user_id: int, session_id: int):
    """End one of a user's sessions."""
    row = db.session.get(UserSession, session_id)
    if row is None or row.user_id != user_id:
        abort(404)
    return _account_change(
        user_id,
        lambda _account: end_session(row, by=current_user, reason="ended_by_admin"),
        _l("That session of %(name)s has ended."),
    )


def _partner_or_404(partner_id: int) -> Partner:
    record = db.session.get(Partner, partner_id)
    if record is None:
        abort(404)
    return record


def _yes_or_no(name: str) -> bool:
    """A yes/no switch posted by a partner page's button; anything else is a 400."""
    choices = request.form.getlist(name)
    if len(choices) != 1 or choices[0] not in ("yes", "no"):
        abort(400, gettext("This form was damaged on its way back. Open the page again."))
    return choices[0] == "yes"


@bp.post("/partners/<id:partner_id>/second-factor")
@roles_required(Role.ADMIN)
def partner_second_factor(partner_id: int):
    """Require (or stop requiring) a second factor for a partner's users."""
    record = _partner_or_404(partner_id)
    required = _yes_or_no("required")
    ended = require_second_factor_for_partner(record, required, by=current_user)
    db.session.commit()
    if required:
        flash(
            ngettext(
                "Users of %(partner)s now sign in with a second factor; %(num)d "
                "session without one ended.",
                "Users of %(partner)s now sign in with a second factor; %(num)d "
                "sessions without one ended.",
                ended,
                partner=record.name,
            ),
            "success",
        )
    else:
        flash(
            gettext(
                "A second factor is now optional for users of %(partner)s.", partner=record.name
            ),
            "success",
        )
    return redirect(url_for("admin.partner", partner_id=partner_id))


@bp.post("/partners/<id:partner_id>/access")
@roles_required(Role.ADMIN)
def partner_access(partner_id: int):
    """Deactivate an office (its users and EHRs lose access at once) or reactivate it."""
    record = _partner_or_404(partner_id)
    ended = set_partner_active(record, _yes_or_no("active"), by=current_user)
    db.session.commit()
    if record.active:
        flash(
            gettext(
                "%(partner)s is active: its users can sign in again and its EHRs can "
                "get new access tokens.",
                partner=record.name,
            ),
            "success",
        )
    else:
        flash(
            ngettext(
                "%(partner)s is deactivated: its users and EHRs have no access, and "
                "%(num)d session ended. Its referrals stay with the desk.",
                "%(partner)s is deactivated: its users and EHRs have no access, and "
                "%(num)d sessions ended. Its referrals stay with the desk.",
                ended,
                partner=record.name,
            ),
            "success",
        )
    return redirect(url_for("admin.partner", partner_id=partner_id))


@bp.get("/service-lines")
@roles_required(Role.ADMIN, Role.PARTNER_SUCCESS)
def service_lines():
    """Service lines with their eligibility criteria and required items."""
    lines = db.session.scalars(
        select(ServiceLine)
        .options(selectinload(ServiceLine.required_items))
        .order_by(ServiceLine.name)
    ).all()
    return render_template("admin/service_lines.html", service_lines=lines)


@bp.route("/service-lines/new", methods=["GET", "POST"])
@bp.route("/service-lines/<id:line_id>", methods=["GET", "POST"])
@roles_required(Role.ADMIN)
def edit_service_line(line_id: int | None = None):
    """Create or edit a service line, its eligibility criteria and required items."""
    line = ServiceLine() if line_id is None else db.session.get(ServiceLine, line_id)
    if line is None:
        abort(404)
    form = ServiceLineForm(obj=line if line_id else None)
    if request.method == "GET" and line_id:
        for field, kind in (
            (form.required_documents, ItemKind.DOCUMENT),
            (form.required_answers, ItemKind.ANSWER),
        ):
            field.data = "\n".join(i.label for i in line.required_items if i.kind is kind)
    coding = (form.fhir_system.data, form.fhir_code.data) if form.fhir_code.data else None
    valid = form.validate_on_submit()
    if valid and fhir_coding_taken(line, coding):
        form.fhir_code.errors.append(gettext("Another service line has this FHIR code."))
        valid = False
    if valid:
        try:
            save_service_line(
                line,
                name=form.name.data,
                description=form.description.data or "",
                eligibility_criteria=form.eligibility_criteria.data or "",
                active=form.active.data,
                required={
                    ItemKind.DOCUMENT: item_labels(form.required_documents.data),
                    ItemKind.ANSWER: item_labels(form.required_answers.data),
                },
                packet=PacketText(
                    treats=form.packet_treats.data or "",
                    how_to_submit=form.packet_how_to_submit.data or "",
                    after=form.packet_after.data or "",
                    contacts=form.packet_contacts.data or "",
                ),
                actor=current_user,
                fhir_coding=coding,
            )
        except IntegrityError:
            db.session.rollback()
            form.name.errors.append(
                gettext("A service line with this name (or this FHIR code) already exists.")
            )
        else:
            db.session.commit()
            flash(gettext("Service line “%(name)s” saved.", name=line.name), "success")
            return redirect(url_for("admin.service_lines"))
    return render_template("admin/service_line_form.html", form=form, line=line), (
        422 if request.method == "POST" else 200
    )


@bp.get("/audit")
@roles_required(Role.ADMIN)
def audit():
    """The audit log, newest first, filterable by referral reference."""
    page = page_arg()
    target = text_arg("target", max_length=40).upper()
    statement = select(AuditEntry).order_by(AuditEntry.id.desc())
    if target:
        # The filter takes a user id or a referral reference (the form says so): other
        # kinds of target (a partner, a service line) share the number space of user ids.
        kind = "user" if target.isdigit() else "referral"
        statement = statement.where(AuditEntry.target_type == kind, AuditEntry.target_id == target)
    entries, has_next = one_page(statement, page, AUDIT_PAGE_SIZE)
    actors = {
        user.id: user
        for user in db.session.scalars(
            select(User).where(User.id.in_({e.actor_id for e in entries if e.actor_id}))
        )
    }
    return render_template(
        "admin/audit.html",
        entries=entries,
        actors=actors,
        target=target,
        page=page,
        has_next=has_next,
    )


@bp.route("/sla", methods=["GET", "POST"])
@roles_required(Role.ADMIN)
def sla_settings():
    """Business hours, holidays and SLA targets (in business hours)."""
    calendar = load_calendar(checked=True)  # the admin sees what they just saved
    hours_form = business_hours_form_class(WEEKDAYS)(prefix="hours")
    targets_form = targets_form_class(TARGET_STAGES, list(Urgency))(prefix="targets")
    holiday_form = HolidayForm(prefix="holiday")
    submitted = request.form.get("section")
    if request.method == "GET" or submitted != "hours":
        hours_form.time_zone.data = calendar.zone.key
        for day in range(7):
            hours = calendar.hours.get(day)
            hours_form[f"closed_{day}"].data = hours is None
            if hours:
                hours_form[f"opens_{day}"].data, hours_form[f"closes_{day}"].data = hours
    if request.method == "GET" or submitted != "targets":
        for stage in TARGET_STAGES:
            for urgency in Urgency:
                field = targets_form[f"{stage.value}__{urgency.value}"]
                field.data = Decimal(
                    str(round(target_minutes(stage, urgency, checked=True) / 60, 2))
                )
    if submitted == "hours" and hours_form.validate():
        save_business_hours(hours_form.time_zone.data, hours_form.weekly(), current_user)
        db.session.commit()
        saved = gettext("Business hours saved. Due times follow them, running clocks included.")
        flash(saved, "success")
        return redirect(url_for("admin.sla_settings"))
    if submitted == "targets" and targets_form.validate():
        save_targets(
            {
                (stage, urgency): float(targets_form[f"{stage.value}__{urgency.value}"].data) * 60
                for stage in TARGET_STAGES
                for urgency in Urgency
            },
            current_user,
        )
        db.session.commit()
        flash(gettext("SLA targets saved. They apply to clocks started from now on."), "success")
        return redirect(url_for("admin.sla_settings"))
    if submitted == "holiday" and holiday_form.validate():
        try:
            add_holiday(holiday_form.day.data, holiday_form.name.data, current_user)
        except HolidayRefused as refused:
            holiday_form.day.errors.append(str(refused))
        else:
            db.session.commit()
            flash(gettext("Holiday added. Running clocks skip it."), "success")
            return redirect(url_for("admin.sla_settings"))
    return render_template(
        "admin/sla.html",
        hours_form=hours_form,
        targets_form=targets_form,
        holiday_form=holiday_form,
        holidays=upcoming_holidays(),
        weekdays=WEEKDAYS,
        stages=TARGET_STAGES,
        urgencies=list(Urgency),
    ), (422 if request.method == "POST" else 200)


@bp.post("/sla/holidays/<id:holiday_id>/delete")
@roles_required(Role.ADMIN)
def delete_holiday(holiday_id: int):
    """Remove a holiday."""
    holiday = db.session.get(Holiday, holiday_id)
    if holiday is None:
        abort(404)
    remove_holiday(holiday, current_user)
    db.session.commit()
    flash(gettext("Holiday removed."), "success")
    return redirect(url_for("admin.sla_settings"))


@bp.get("/outbox")
@roles_required(Role.ADMIN)
def dead_letters():
    """Messages that could not be delivered after every retry, and the latest ones
    cancelled because what they were about was settled while they waited."""
    pending = db.session.scalar(
        select(func.count(OutboxMessage.id)).where(OutboxMessage.status == MessageStatus.PENDING)
    )
    return render_template(
        "admin/dead_letters.html",
        messages=_messages_shown(MessageStatus.DEAD, 200),
        pending=pending,
        cancelled=_messages_shown(MessageStatus.CANCELLED, 50),
    )


@dataclass(frozen=True)
class ShownMessage:
    """An outbox message as the admin page shows it: `to` and `error` never hold a
    patient's address (admins see no patient identity; the mail server's answer often
    repeats the address), only whose it is."""

    message: OutboxMessage
    to: str
    error: str


def _messages_shown(status: MessageStatus, limit: int) -> list[ShownMessage]:
    """The newest `limit` messages of `status`, each with its referral's patient
    addresses read alongside (one statement) to hide them."""
    rows = db.session.execute(
        select(OutboxMessage, Referral.reference, Referral.patient_email, Referral.patient_phone)
        .outerjoin(Referral, OutboxMessage.referral_id == Referral.id)
        .where(OutboxMessage.status == status)
        .order_by(OutboxMessage.id.desc())
        .limit(limit)
    ).all()
    return [_shown(*row) for row in rows]


def _shown(
    message: OutboxMessage,
    reference: str | None,
    patient_email: str | None,
    patient_phone: str | None,
) -> ShownMessage:
    error = message.last_error or ""
    if message.recipient not in {patient_email, patient_phone} - {None}:
        return ShownMessage(message, message.recipient, error)
    hidden = gettext("the patient of %(reference)s", reference=reference)
    return ShownMessage(message, hidden, error.replace(message.recipient, f"[{hidden}]"))


@bp.post("/outbox/<id:message_id>/retry")
@roles_required(Role.ADMIN)
def retry_message(message_id: int):
    """Put a dead-lettered message back in the queue."""
    message = db.session.get(OutboxMessage, message_id)
    if message is None or message.status is not MessageStatus.DEAD:
        abort(404)
    retry_dead_message(message)
    record_audit("outbox.retried", actor=current_user, target_type="outbox", target_id=message.id)
    db.session.commit()
    flash(gettext("The message will be sent again on the next delivery run."), "success")
    return redirect(url_for("admin.dead_letters"))
