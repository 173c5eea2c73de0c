"""Referral pages: the partner's list, the form, a referral's page and its actions."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    url_for,
)
from flask_login import current_user, login_required
from htmx_flask import request
from sqlalchemy import select
from sqlalchemy.orm import selectinload
from sqlalchemy.orm.exc import StaleDataError

from portal.accounts.sessions import passive, roles_required
from portal.auditing import record_audit
from portal.extensions import db
from portal.models import (
    STAFF_ROLES,
    AppointmentMode,
    Channel,
    ConsentKind,
    ContactMethod,
    Document,
    OutreachResult,
    Partner,
    Referral,
    Role,
    ServiceLine,
    SlaClock,
    Urgency,
)
from portal.patients.services import Slot, latest_link, send_next_step_link
from portal.query_args import page_arg
from portal.referrals import forms, services
from portal.referrals.access import get_referral_or_404, visible_referrals
from portal.referrals.clarification import (
    InfoAnswer,
    answer_information,
    open_items,
    open_request,
    request_information,
)
from portal.referrals.consent import current_wording, wording_for
from portal.referrals.unread import (
    UNREAD_CAP,
    mark_seen,
    unread_references,
    unread_referral_count,
)
from portal.referrals.workflow import (
    ActionForbidden,
    EditConflict,
    TransitionRefused,
    allowed_actions,
)
from portal.sla.clocks import active_clock, breaches_of, record_breach_reason
from portal.sla.display import PARTNER_PROMISES
from portal.sla.views import clock_views

bp = Blueprint("referrals", __name__, url_prefix="/referrals")

SUBMITTING_ROLES = (Role.PARTNER, Role.INTAKE)


def _active_service_lines() -> list[ServiceLine]:
    return list(
        db.session.scalars(
            select(ServiceLine)
            .where(ServiceLine.active.is_(True))
            .options(selectinload(ServiceLine.required_items))
            .order_by(ServiceLine.name)
        )
    )


def _build_referral_form(service_lines: list[ServiceLine]) -> forms.ReferralForm:
    """The form for the service line the request names (the fields depend on it)."""
    chosen = request.values.get("service_line", "")
    line = next((s for s in service_lines if str(s.id) == chosen), None)
    form_class = forms.referral_form_class(line, for_staff=not current_user.is_partner_user)
    form = form_class(service_lines=service_lines)
    if not form.is_submitted():  # the htmx fragment asks with GET ?service_line=...
        form.service_line.data = chosen
    if isinstance(form, forms.StaffReferralForm):
        partners = db.session.scalars(
            select(Partner).where(Partner.active.is_(True)).order_by(Partner.name)
        )
        form.partner.choices = [("", "Choose the partner")] + [
            (str(p.id), p.name) for p in partners
        ]
    return form


@bp.app_context_processor
def unread_badge() -> dict[str, Any]:
    """The partner's unread-updates count, for the navigation badge on every page."""
    user = current_user  # None when rendering a message outside a request
    if user and user.is_authenticated and user.is_partner_user:
        count = unread_referral_count(user)
        return {"unread_updates": f"{UNREAD_CAP - 1}+" if count >= UNREAD_CAP else count}
    return {}


@bp.get("/")
@roles_required(Role.PARTNER)
def index():
    """The partner's referrals, newest first."""
    page = page_arg()
    size = current_app.config["QUEUE_PAGE_SIZE"]
    referrals = list(
        db.session.scalars(
            visible_referrals(current_user)
            .options(selectinload(Referral.service_line))
            .order_by(Referral.submitted_at.desc(), Referral.id.desc())
            .limit(size + 1)
            .offset((page - 1) * size)
        )
    )
    has_next = len(referrals) > size
    referrals = referrals[:size]
    return render_template(
        "referrals/index.html",
        unread=unread_references(current_user, [r.id for r in referrals]),
        referrals=referrals,
        page=page,
        has_next=has_next,
    )


@bp.route("/new", methods=["GET", "POST"])
@roles_required(*SUBMITTING_ROLES)
def new():
    """The one-page referral form."""
    service_lines = _active_service_lines()
    form = _build_referral_form(service_lines)
    refreshing = "show_requirements" in request.form
    if not refreshing and form.validate_on_submit():
        result = services.submit_referral(_submission_from(form), current_user)
        if not result.created:
            flash("This referral was already received; it was not sent twice.", "info")
        return redirect(url_for("referrals.submitted", reference=result.referral.reference))
    status = 422 if request.method == "POST" and not refreshing else 200
    return (
        render_template(
            "referrals/new.html",
            form=form,
            contact_wording=current_wording(ConsentKind.CONTACT),
            sharing_wording=current_wording(ConsentKind.OUTCOME_SHARING),
        ),
        status,
    )


def _submission_from(form: forms.ReferralForm) -> services.ReferralSubmission:
    if isinstance(form, forms.StaffReferralForm):
        partner = db.session.get(Partner, int(form.partner.data))
        channel = Channel(form.source_channel.data)
    else:
        partner, channel = current_user.partner, Channel.PORTAL
    if partner is None:
        abort(400)
    return services.ReferralSubmission(
        partner=partner,
        service_line=form.selected_service_line,
        urgency=Urgency(form.urgency.data),
        referring_provider_name=form.referring_provider_name.data,
        referring_provider_npi=form.referring_provider_npi.data,
        patient_first_name=form.patient_first_name.data,
        patient_last_name=form.patient_last_name.data,
        patient_date_of_birth=form.patient_date_of_birth.data,
        patient_phone=form.patient_phone.data or None,
        patient_email=(form.patient_email.data or "").lower() or None,
        preferred_contact=ContactMethod(form.preferred_contact.data),
        reason=form.reason.data,
        clinical_context=form.clinical_context.data or "",
        consent_to_contact=form.consent_to_contact.data,
        consent_to_outcome_sharing=form.consent_to_outcome_sharing.data,
        submission_token=form.submission_token.data,
        source_channel=channel,
        source_code=form.source_code.data or None,
        documents=form.uploads,
        item_answers=form.item_answers(),
        item_documents=form.item_uploads,
    )


@bp.get("/new/requirements")
@roles_required(*SUBMITTING_ROLES)
def requirements():
    """htmx fragment: the chosen service line's eligibility criteria and required items."""
    form = _build_referral_form(_active_service_lines())
    return render_template("referrals/_requirements.html", form=form)


@bp.get("/<ref:reference>/submitted")
@roles_required(*SUBMITTING_ROLES)
def submitted(reference: str):
    """Confirmation with the reference to quote."""
    referral = get_referral_or_404(current_user, reference)
    return render_template("referrals/submitted.html", referral=referral)


@bp.get("/<ref:reference>")
@login_required
def detail(reference: str):
    """One referral: status, timeline and, for staff, the actions open to them."""
    referral = get_referral_or_404(current_user, reference)
    record_audit("referral.viewed", actor=current_user, referral=referral)
    if current_user.is_partner_user:
        mark_seen(current_user, referral)
    db.session.commit()
    return _render_detail(referral)


def _render_detail(
    referral: Referral,
    *,
    failed_action: str | None = None,
    failed_form: Any = None,
    message: str | None = None,
    status: int = 200,
    answer_form: forms.AnswerInfoForm | None = None,
    answer_result: list | None = None,
) -> tuple[str, int]:
    # Actions with a page of their own (the partner's answer) are not in ACTIONS.
    actions = [t for t in allowed_actions(referral, current_user) if t.action in ACTIONS]
    action_forms = {}
    for transition in actions:
        if transition.action == failed_action and failed_form is not None:
            form = failed_form
            form.version.data = referral.version
        else:
            form = _new_action_form(
                ACTIONS[transition.action], referral, formdata=None, version=referral.version
            )
        action_forms[transition.action] = form
    consents = services.consents_of(referral)
    if answer_form is None and current_user.is_partner_user:
        answer_form = _answer_form(referral, formdata=None)
    return (
        render_template(
            "referrals/detail.html",
            referral=referral,
            actions=actions,
            action_forms=action_forms,
            action_message=message,
            failed_action=failed_action,
            consents=[(c, wording_for(c.kind, c.wording_version)) for c in consents],
            info_request=open_request(referral),
            answer_form=answer_form,
            answer_result=answer_result,
            patient_link=latest_link(referral) if current_user.is_staff else None,
            breaches=breaches_of(referral) if current_user.is_staff else [],
            breach_form=forms.BreachReasonForm(formdata=None),
            **_timeline_context(referral),
        ),
        status,
    )


def _timeline_etag(referral: Referral) -> str:
    """Changes when anything this audience sees changes: the referral row or its events."""
    audience = "partner" if current_user.is_partner_user else "staff"
    last_event = services.last_event_id(referral, current_user)
    return f'"{referral.reference}-{referral.version}-{last_event}-{audience}"'


def _timeline_context(referral: Referral) -> dict[str, Any]:
    clock = active_clock(referral)
    return {
        "events": services.timeline(referral, current_user),
        "headline": lambda event: services.event_headline(event, current_user),
        "timeline_etag": _timeline_etag(referral),
        "poll_seconds": current_app.config["TIMELINE_POLL_SECONDS"],
        "clock": clock_views([referral]).get(referral.id) if clock else None,
        "promise": PARTNER_PROMISES.get(clock.stage) if clock and clock.due_at else None,
        "promise_due": clock.due_at if clock else None,
    }


@bp.get("/<ref:reference>/timeline")
@passive
@login_required
def timeline(reference: str):
    """htmx fragment polled by an open referral page; 304 when nothing changed."""
    referral = get_referral_or_404(current_user, reference)
    etag = _timeline_etag(referral)
    if request.headers.get("If-None-Match") == etag:
        response = Response(status=304)
        response.headers["ETag"] = etag
        return response
    record_audit("referral.timeline_viewed", actor=current_user, referral=referral)
    if current_user.is_partner_user:
        mark_seen(current_user, referral)  # the open page shows the news as it arrives
    db.session.commit()
    html = render_template(
        "referrals/_timeline.html", referral=referral, **_timeline_context(referral)
    )
    response = Response(html)
    response.headers["ETag"] = etag
    return response


@bp.get("/<ref:reference>/documents/<id:document_id>")
@login_required
def document(reference: str, document_id: int):
    """Download a supporting document (staff with patient access and the partner)."""
    if not current_user.sees_patient_details:
        abort(403)
    referral = get_referral_or_404(current_user, reference)
    doc = db.session.get(Document, document_id)
    if doc is None or doc.referral_id != referral.id:
        abort(404)
    record_audit(
        "referral.document_downloaded", actor=current_user, referral=referral, document_id=doc.id
    )
    db.session.commit()
    response = Response(doc.content, mimetype=doc.content_type)
    response.headers["Content-Disposition"] = _attachment_header(doc.filename)
    return response


def _attachment_header(filename: str) -> str:
    ascii_name = filename.encode("ascii", "ignore").decode() or "document"
    return f"attachment; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(filename)}"


# --- Actions -------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    form_class: type
    perform: Callable[[Referral, Any, Any], object]
    done: str


def _new_action_form(spec: Action, referral: Referral, **kwargs: Any) -> Any:
    """An action's form; forms whose choices depend on the referral get them here."""
    form = spec.form_class(**kwargs)
    if hasattr(form, "prepare"):
        form.prepare(referral)
    return form


ACTIONS: dict[str, Action] = {
    "first_touch": Action(
        forms.ActionForm,
        lambda r, u, f: services.record_first_touch(
            r, u, expected_version=f.version.data, note=f.note.data or ""
        ),
        "First touch recorded.",
    ),
    "resume_review": Action(
        forms.ActionForm,
        lambda r, u, f: services.resume_review(
            r, u, expected_version=f.version.data, note=f.note.data or ""
        ),
        "Back in review.",
    ),
    "accept": Action(
        forms.AcceptForm,
        lambda r, u, f: services.accept(
            r, u, expected_version=f.version.data, provider=f.provider.data, note=f.note.data or ""
        ),
        "Referral accepted.",
    ),
    "decline": Action(
        forms.DeclineForm,
        lambda r, u, f: services.decline(
            r, u, expected_version=f.version.data, reason=f.reason_text, note=f.note.data or ""
        ),
        "Referral declined.",
    ),
    "redirect": Action(
        forms.RedirectForm,
        lambda r, u, f: services.redirect_referral(
            r,
            u,
            expected_version=f.version.data,
            destination=f.destination.data,
            note=f.note.data or "",
        ),
        "Referral redirected.",
    ),
    "log_outreach": Action(
        forms.OutreachForm,
        lambda r, u, f: services.log_outreach(
            r,
            u,
            expected_version=f.version.data,
            channel=ContactMethod(f.channel.data),
            result=OutreachResult(f.result.data),
            note=f.note.data or "",
        ),
        "Contact attempt logged.",
    ),
    "schedule": Action(
        forms.ScheduleForm,
        lambda r, u, f: services.schedule(
            r,
            u,
            expected_version=f.version.data,
            appointment_at=f.appointment_at,
            mode=AppointmentMode(f.mode.data),
            note=f.note.data or "",
        ),
        "Visit scheduled.",
    ),
    "record_completed": Action(
        forms.ActionForm,
        lambda r, u, f: services.record_completed(
            r, u, expected_version=f.version.data, note=f.note.data or ""
        ),
        "Visit recorded as completed.",
    ),
    "record_no_show": Action(
        forms.ActionForm,
        lambda r, u, f: services.record_no_show(
            r, u, expected_version=f.version.data, note=f.note.data or ""
        ),
        "No-show recorded.",
    ),
    "mark_unreachable": Action(
        forms.ActionForm,
        lambda r, u, f: services.mark_unreachable(
            r, u, expected_version=f.version.data, note=f.note.data or ""
        ),
        "Referral closed: patient unreachable.",
    ),
    "withdraw": Action(
        forms.WithdrawForm,
        lambda r, u, f: services.withdraw(
            r, u, expected_version=f.version.data, reason=f.reason.data or ""
        ),
        "Referral withdrawn.",
    ),
    "request_info": Action(
        forms.RequestInfoForm,
        lambda r, u, f: request_information(
            r,
            u,
            expected_version=f.version.data,
            required_item_ids=f.required_items.data or [],
            other_documents=forms.item_labels(f.other_documents.data),
            other_questions=forms.item_labels(f.other_questions.data),
            message=f.message.data or "",
            note=f.note.data or "",
        ),
        "Request sent to the referring office.",
    ),
    "send_patient_link": Action(
        forms.SendLinkForm,
        lambda r, u, f: send_next_step_link(
            r,
            u,
            expected_version=f.version.data,
            via=ContactMethod(f.via.data),
            slots=[Slot(t, AppointmentMode(f.mode.data)) for t in f.offered()],
            note=f.note.data or "",
        ),
        "Link sent to the patient.",
    ),
    "share_follow_up": Action(
        forms.ShareFollowUpForm,
        lambda r, u, f: services.share_follow_up(
            r, u, expected_version=f.version.data, message=f.message.data
        ),
        "Follow-up note shared with the referring office.",
    ),
    "add_note": Action(
        forms.NoteForm,
        lambda r, u, f: services.add_staff_note(
            r, u, expected_version=f.version.data, note=f.note.data
        ),
        "Note added.",
    ),
}


@bp.post("/<ref:reference>/actions/<action>")
@login_required
def act(reference: str, action: str):
    """Perform one workflow action; refusals and conflicts re-render with the input kept."""
    referral = get_referral_or_404(current_user, reference)
    spec = ACTIONS.get(action)
    if spec is None:
        abort(404)
    form = _new_action_form(spec, referral)
    if not form.validate():
        return _render_detail(
            referral,
            failed_action=action,
            failed_form=form,
            message="Check the highlighted fields.",
            status=422,
        )
    try:
        spec.perform(referral, current_user, form)
        db.session.commit()
    except ActionForbidden as forbidden:
        db.session.rollback()
        return _refused(referral, action, form, str(forbidden), 403)
    except TransitionRefused as refused:
        db.session.rollback()
        return _refused(referral, action, form, str(refused), 409)
    except (EditConflict, StaleDataError):
        db.session.rollback()
        return _refused(
            referral,
            action,
            form,
            "Someone else changed this referral while you were working on it, so your "
            "change was not saved. The page now shows the latest version; your entries "
            "are kept below. Check them and submit again if they still apply.",
            409,
        )
    flash(spec.done, "success")
    return redirect(url_for("referrals.detail", reference=referral.reference))


@bp.post("/<ref:reference>/breaches/<id:clock_id>")
@roles_required(*STAFF_ROLES)
def record_breach(reference: str, clock_id: int):
    """Record why a stage missed its target (a list plus other)."""
    referral = get_referral_or_404(current_user, reference)
    clock = db.session.get(SlaClock, clock_id)
    if clock is None or clock.referral_id != referral.id or clock.breached_at is None:
        abort(404)
    form = forms.BreachReasonForm()
    if not form.validate():
        return _render_detail(referral, message="Choose a breach reason.", status=422)
    record_breach_reason(clock, form.reason_text, current_user)
    record_audit(
        "referral.breach_reason", actor=current_user, referral=referral, stage=clock.stage.value
    )
    db.session.commit()
    flash("Breach reason recorded.", "success")
    return redirect(url_for("referrals.detail", reference=reference))


def _answer_form(referral: Referral, **kwargs: Any) -> forms.AnswerInfoForm | None:
    items = open_items(referral)
    if not items:
        return None
    return forms.answer_form_class(items)(open_items=items, **kwargs)


@bp.post("/<ref:reference>/information")
@roles_required(Role.PARTNER)
def answer_information_request(reference: str):
    """The partner answers intake's request in place (an htmx form; works without JS)."""
    referral = get_referral_or_404(current_user, reference)
    form = _answer_form(referral)
    if form is None:
        flash("Nothing is being asked for on this referral any more.", "info")
        return redirect(url_for("referrals.detail", reference=reference))
    still_missing = None
    if form.validate():
        try:
            _event, still_missing = answer_information(
                referral,
                current_user,
                InfoAnswer(form.item_answers(), form.item_uploads, form.message.data or ""),
                expected_version=None,
            )
        except TransitionRefused as refused:
            db.session.rollback()
            form.message.errors = [str(refused)]
        else:
            db.session.commit()
            if not request.htmx:
                flash(
                    "Thank you: everything asked for has been sent."
                    if not still_missing
                    else "Thank you. Some items are still missing.",
                    "success",
                )
                return redirect(url_for("referrals.detail", reference=reference))
            form = _answer_form(referral, formdata=None)
    status = 422 if form is not None and form.errors else 200
    if request.htmx:
        return render_template(
            "referrals/_needs_info.html",
            referral=referral,
            info_request=open_request(referral),
            answer_form=form,
            answer_result=still_missing,
        ), status
    return _render_detail(referral, answer_form=form, status=status)


def _refused(referral: Referral, action: str, form: Any, message: str, status: int):
    db.session.expire_all()
    referral = get_referral_or_404(current_user, referral.reference)
    return _render_detail(
        referral, failed_action=action, failed_form=form, message=message, status=status
    )
