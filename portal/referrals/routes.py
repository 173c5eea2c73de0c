"""Referral pages: the partner's list, the form, a referral's page and its actions."""

from __future__ import annotations

from functools import cache
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
from flask_babel import gettext
from flask_login import current_user, login_required
from htmx_flask import request
from sqlalchemy import or_, select
from sqlalchemy.orm import selectinload

from portal.accounts.sessions import passive, roles_required
from portal.auditing import record_audit
from portal.clock import utcnow
from portal.database import commit_keeping_loaded
from portal.extensions import db
from portal.models import (
    Channel,
    ConsentKind,
    ContactMethod,
    Document,
    OutcomeClass,
    Partner,
    PatientLanguage,
    Referral,
    Role,
    ServiceLine,
    SlaClock,
    Status,
    Urgency,
)
from portal.pagination import one_page
from portal.patients.services import latest_link
from portal.query_args import page_arg, text_arg
from portal.referrals import drafts, forms, services
from portal.referrals.access import (
    get_referral_and_seen_or_404,
    get_referral_or_404,
    visible_referrals,
)
from portal.referrals.actions import form_actions, new_action_form
from portal.referrals.consent import current_wording, wording_for
from portal.referrals.duplicates import (
    PossibleDuplicate,
    is_submission_token,
    new_submission_token,
    submitted_with_token,
)
from portal.referrals.needs_info import items_waiting, open_items, open_request
from portal.referrals.unread import (
    UNREAD_CAP,
    has_news,
    mark_seen,
    unread_referral_count,
)
from portal.referrals.workflow import (
    allowed_actions,
)
from portal.sla.clocks import active_clock, load_calendar
from portal.sla.display import PARTNER_PROMISES, describe_clock

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
        form.partner.choices = [("", gettext("Choose the partner"))] + [
            (str(p.id), p.name) for p in partners
        ]
    return form


@bp.app_context_processor
def unread_badge() -> dict[str, Any]:
    """The partner's unread-updates count, for the navigation badge on every page: a
    function, so only what shows the navigation (base.html) reads it, not fragments."""
    return {"unread_updates": _unread_updates}


def _unread_updates() -> int | str | None:
    user = current_user  # None when rendering a message outside a request
    if user and user.is_authenticated and user.is_partner_user:
        count = unread_referral_count(user)
        return f"{UNREAD_CAP - 1}+" if count >= UNREAD_CAP else count
    return None


@bp.get("/")
@roles_required(Role.PARTNER)
def index():
    """The partner's referrals, newest first."""
    page = page_arg()
    size = current_app.config["QUEUE_PAGE_SIZE"]
    # One statement reading only what the rows show: plain columns (fifty entities cost
    # twice as much to load), the service line's name, whether each one has news.
    rows, has_next = one_page(
        visible_referrals(current_user)
        .with_only_columns(*_LIST_COLUMNS, has_news(current_user))
        .join(Referral.service_line)
        .order_by(Referral.submitted_at.desc(), Referral.id.desc()),
        page,
        size,
        rows=True,
    )
    return render_template(
        "referrals/index.html",
        rows=rows,
        outcome_of=_outcome_by_status(),
        page=page,
        has_next=has_next,
    )


# What a row of the partner's list shows (referrals/index.html).
_LIST_COLUMNS = (
    Referral.reference,
    Referral.submitted_at,
    Referral.urgency,
    Referral.status,
    Referral.updated_at,
    ServiceLine.name.label("service_line"),
)


@cache
def _outcome_by_status() -> dict[Status, OutcomeClass]:
    """Each status's outcome class, by the referral's own rule, for rows read as columns."""
    return {status: Referral(status=status).outcome_class for status in Status}


@bp.route("/new", methods=["GET", "POST"])
@roles_required(*SUBMITTING_ROLES)
def new():
    """The one-page referral form, opened as /referrals/new?form=<submission token>.

    The token lives in the URL, so Back after sending finds the referral it made and
    says so, rather than offering a blank form to type the patient in again.
    """
    if request.method == "GET":
        token = _form_token_arg()
        if not token:
            return redirect(url_for("referrals.new", form=new_submission_token()))
        sent = submitted_with_token(current_user, token)
        if sent is not None:
            return render_template("referrals/submitted.html", referral=sent, sent_before=True)
        # Back after "Save for later": that form is a draft now; a blank form with its
        # token would save over the draft (and keep its documents for another patient).
        saved = drafts.saved_from_form(current_user, {"submission_token": token})
        if saved is not None:
            return redirect(url_for("referrals.draft", draft_id=saved.id))
    else:
        posted = request.form.get("submission_token", "")
        sent = submitted_with_token(current_user, posted) if is_submission_token(posted) else None
        if sent is not None:  # sent already: a double click, or Back to a draft and Send
            flash(gettext("This referral was already received; it was not sent twice."), "info")
            return redirect(url_for("referrals.submitted", reference=sent.reference))
    service_lines = _active_service_lines()
    form = _build_referral_form(service_lines)
    if request.method == "GET":
        form.submission_token.data = token
    refreshing = "show_requirements" in request.form
    possible_duplicate, draft_gone = None, False
    try:
        draft = drafts.continued_draft(current_user)  # sending a saved draft deletes it
    except drafts.DraftGone:
        draft, draft_gone = None, True
        form.documents.errors = [
            gettext(
                "This draft was deleted meanwhile (by a colleague, or because it expired), and "
                "its saved documents with it. Attach them again, then send."
            )
        ]
        form.submission_token.data = new_submission_token()  # a form of its own now
    if (
        not refreshing
        and not draft_gone
        and form.validate_on_submit()
        and drafts.documents_fit(form, draft)
    ):
        try:
            submission = drafts.finish_draft(draft, _submission_from(form), current_user)
            result = services.submit_referral(submission, current_user)
        except PossibleDuplicate as warning:
            possible_duplicate = warning.earlier
        else:
            if not result.created:
                flash(gettext("This referral was already received; it was not sent twice."), "info")
            return redirect(url_for("referrals.submitted", reference=result.referral.reference))
    if possible_duplicate is not None or draft_gone:
        status = 409
    else:
        status = 422 if request.method == "POST" and not refreshing else 200
    return (
        render_template(
            "referrals/new.html",
            form=form,
            draft=draft,
            possible_duplicate=possible_duplicate,
            contact_wording=current_wording(ConsentKind.CONTACT),
            sharing_wording=current_wording(ConsentKind.OUTCOME_SHARING),
        ),
        status,
    )


def _form_token_arg() -> str:
    """The `form` query parameter (the opened form's submission token); "" when absent,
    400 when it is not one the portal could have made."""
    token = text_arg("form", max_length=64)
    if token and not is_submission_token(token):
        abort(
            400,
            description=gettext("“form” is not a form the portal opened: start a new referral."),
        )
    return token


def _submission_from(form: forms.ReferralForm) -> services.ReferralSubmission:
    if isinstance(form, forms.StaffReferralForm):
        partner = db.session.get(Partner, int(form.partner.data))
        channel = Channel(form.source_channel.data)
    else:
        partner, channel = current_user.partner, Channel.PORTAL
    if partner is None:
        abort(400)
    return submission_from_form(
        form, partner, channel, submit_anyway="submit_anyway" in request.form
    )


def submission_from_form(
    form: forms.ReferralForm, partner: Partner, channel: Channel, *, submit_anyway: bool
) -> services.ReferralSubmission:
    """What a validated referral form submits (the web form's, and the FHIR door's:
    portal/fhir/messages.py fills the same form from a message)."""
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
        patient_language=PatientLanguage(form.patient_language.data),
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
        submit_anyway=submit_anyway,
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
    referral, seen_at = get_referral_and_seen_or_404(current_user, reference)
    # Read with the referral, before the commit, so the page shows one moment: the
    # events beside the status and the version its forms carry.
    events = services.timeline(referral, current_user)
    record_audit("referral.viewed", actor=current_user, referral=referral)
    if current_user.is_partner_user:
        mark_seen(current_user, referral, seen_at)
    # What the page shows was loaded before the commit: keep it rather than read the
    # user and the referral again.
    commit_keeping_loaded()
    return _render_detail(referral, events=events)


def _render_detail(
    referral: Referral,
    *,
    failed_action: str | None = None,
    failed_form: Any = None,
    message: str | None = None,
    status: int = 200,
    answer_form: forms.AnswerInfoForm | None = None,
    answer_result: list | None = None,
    changes_since: list | None = None,
    events: list | None = None,
    failed_breach: tuple[int, forms.BreachReasonForm] | None = None,
) -> tuple[str, int]:
    declared = form_actions()
    actions = [t for t in allowed_actions(referral, current_user) if t.action in declared]
    if events is None:
        events = services.timeline(referral, current_user)
    last_event = max((event.id for event in events), default=0)
    action_forms = {}
    for transition in actions:
        if transition.action == failed_action and failed_form is not None:
            form = failed_form
            if changes_since is not None:  # a conflict: shown what changed, act on now
                form.keep_for_retry(referral.version, last_event)
        else:
            form = new_action_form(
                declared[transition.action],
                referral,
                formdata=None,
                version=referral.version,
                seen_event=last_event,
            )
        action_forms[transition.action] = form
    consents = services.consents_of(referral)
    info_request = open_request(referral)
    clock, breaches = _clocks_of(referral, breached=current_user.is_staff)
    if answer_form is None and current_user.is_partner_user:
        answer_form = _answer_form(referral, formdata=None, items=items_waiting(info_request))
    if answer_form is not None and not answer_form.version.raw_data:  # a new form
        answer_form.keep_for_retry(referral.version, last_event)
    return (
        render_template(
            "referrals/detail.html",
            referral=referral,
            actions=actions,
            action_forms=action_forms,
            action_message=message,
            failed_action=failed_action,
            changes_since=changes_since,
            consents=[(c, wording_for(c.kind, c.wording_version)) for c in consents],
            info_request=info_request,
            answer_form=answer_form,
            answer_result=answer_result,
            patient_link=latest_link(referral) if current_user.is_staff else None,
            breaches=breaches,
            # The breach-reason form that was refused, with what was typed, for its clock.
            failed_breach_id=failed_breach[0] if failed_breach else None,
            breach_form=(
                failed_breach[1]
                if failed_breach
                else forms.BreachReasonForm(formdata=None)
                if breaches
                else None
            ),
            **_timeline_context(referral, last_event, events, clock),
        ),
        status,
    )


def _timeline_etag(reference: str, version: int, last_event: int) -> str:
    """The timeline's ETag for this user's audience (`last_event` read once by the
    caller)."""
    return services.timeline_etag(
        reference, version, last_event, partner=current_user.is_partner_user
    )


def _clocks_of(referral: Referral, *, breached: bool) -> tuple[SlaClock | None, list[SlaClock]]:
    """The referral's running clock, and (with `breached`) every clock that breached,
    oldest breach first: one query for both."""
    wanted = SlaClock.stopped_at.is_(None)
    if breached:
        wanted = or_(wanted, SlaClock.breached_at.is_not(None))
    clocks = db.session.scalars(
        select(SlaClock).where(SlaClock.referral_id == referral.id, wanted)
    ).all()
    running = next((c for c in clocks if c.stopped_at is None), None)
    breaches = sorted((c for c in clocks if c.breached_at is not None), key=lambda c: c.breached_at)
    return running, breaches if breached else []


NOT_READ: Any = object()


def _timeline_context(
    referral: Referral, last_event: int, events: Any = NOT_READ, clock: Any = NOT_READ
) -> dict[str, Any]:
    """What the timeline fragment shows; `events` and the running `clock` (None: none
    runs) when the caller has read them already."""
    if clock is NOT_READ:
        clock = active_clock(referral)
    if events is NOT_READ:
        events = services.timeline(referral, current_user)
    return {
        "events": events,
        "headline": lambda event: services.event_headline(event, current_user),
        "timeline_etag": _timeline_etag(referral.reference, referral.version, last_event),
        "poll_seconds": current_app.config["TIMELINE_POLL_SECONDS"],
        "clock": describe_clock(clock, load_calendar(), utcnow()) if clock else None,
        "promise": PARTNER_PROMISES.get(clock.stage) if clock and clock.due_at else None,
        "promise_due": clock.due_at if clock else None,
    }


@bp.get("/<ref:reference>/timeline")
@passive
@login_required
def timeline(reference: str):
    """htmx fragment polled by an open referral page; 304 when nothing changed."""
    # "Nothing new?" is one indexed read: the referral's version and its newest event
    # this audience sees, without loading the referral. Most such polls never get here:
    # portal/referrals/timeline_poll.py answers them before Flask, with the same read.
    found = services.timeline_state(current_user, reference)
    if found is None:
        abort(404)
    etag = _timeline_etag(reference, *found[1:])
    if request.headers.get("If-None-Match") == etag:
        response = Response(status=304)
        response.headers["ETag"] = etag
        return response
    referral, seen_at = get_referral_and_seen_or_404(current_user, reference)
    events = services.timeline(referral, current_user)  # before the commit, as above
    last_event = max((event.id for event in events), default=0)
    etag = _timeline_etag(reference, referral.version, last_event)
    record_audit("referral.timeline_viewed", actor=current_user, referral=referral)
    if current_user.is_partner_user:
        mark_seen(current_user, referral, seen_at)  # the open page shows the news
    commit_keeping_loaded()
    html = render_template(
        "referrals/_timeline.html",
        referral=referral,
        **_timeline_context(referral, last_event, events),
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


def _answer_form(
    referral: Referral, *, items: list | None = None, **kwargs: Any
) -> forms.AnswerInfoForm | None:
    """The partner's form answering the open request (`items`: what it still waits for,
    when the caller has read them)."""
    items = open_items(referral) if items is None else items
    if not items:
        return None
    return forms.answer_form_class(items)(open_items=items, **kwargs)
