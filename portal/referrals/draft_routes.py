"""Draft pages on the referrals blueprint: save the form for later, list, continue, delete.

Submitting a continued draft is the referral form's own POST (`referrals.new`), which
finds the draft from the form's hidden `draft` field (see drafts.continued_draft).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_login import current_user, login_required
from sqlalchemy import select
from sqlalchemy.orm import joinedload
from wtforms.validators import ValidationError

from portal.extensions import db
from portal.models import ConsentKind, ReferralDraft, ServiceLine
from portal.referrals import drafts, forms
from portal.referrals.consent import current_wording
from portal.referrals.duplicates import new_submission_token
from portal.referrals.routes import _active_service_lines, _build_referral_form, bp


def office_only(view: Callable) -> Callable:
    """Drafts are the referring office's alone: for anyone else there is nothing here."""

    @wraps(view)
    @login_required
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        if not current_user.is_partner_user:
            abort(404)
        return view(*args, **kwargs)

    return wrapped


@bp.get("/drafts")
@office_only
def list_drafts():
    """The office's drafts, last saved first."""
    rows = db.session.scalars(
        drafts.office_drafts(current_user)
        .options(joinedload(ReferralDraft.saved_by))
        .order_by(ReferralDraft.saved_at.desc(), ReferralDraft.id.desc())
    ).all()
    lines = db.session.execute(select(ServiceLine.id, ServiceLine.name))
    return render_template(
        "referrals/drafts.html",
        drafts=rows,
        line_names={str(line_id): name for line_id, name in lines},
        expires_at=drafts.expires_at,
    )


@bp.post("/drafts")
@office_only
def save_new_draft():
    """The "Save for later" button of a new referral form: a new draft of the office's."""
    return _save_draft(None)


@bp.route("/drafts/<id:draft_id>", methods=["GET", "POST"])
@office_only
def draft(draft_id: int):
    """Continue a draft: the referral form as it was saved, with its documents. POST
    ("Save for later" again) saves it."""
    if request.method == "POST":
        existing = drafts.find_draft(current_user, draft_id)
        if existing is None:
            return _draft_gone()
        return _save_draft(existing)
    existing = drafts.get_draft_or_404(current_user, draft_id)
    drafts.record_draft_opened(existing, current_user)
    db.session.commit()
    service_lines = _active_service_lines()
    chosen = existing.fields.get("service_line")
    line = next((s for s in service_lines if str(s.id) == chosen), None)
    form_class = forms.referral_form_class(line, for_staff=False)
    form = form_class(formdata=drafts.formdata_of(existing), service_lines=service_lines)
    form.submission_token.data = new_submission_token()
    return _render_referral_form(form, drafts.ContinuedDraft(existing), 200)


def _draft_gone():
    """A save to a draft that is not there (deleted meanwhile, or never the office's):
    the form comes back with what was typed, to save as a new draft or send."""
    form = _build_referral_form(_active_service_lines())
    form.documents.errors = [
        gettext(
            "This draft no longer exists (deleted by a colleague, or expired). What you typed "
            "is below: save it as a new draft or send it; attach any documents again."
        )
    ]
    form.submission_token.data = new_submission_token()
    return _render_referral_form(form, None, 404)


def _save_draft(existing: ReferralDraft | None):
    """Save the referral form as it stands: every field as typed, only bounded, and the
    documents, only checked for size and type."""
    continued = drafts.continued_draft(current_user, existing) if existing else None
    form = _build_referral_form(_active_service_lines())
    values, refusals = drafts.typed_values(form)
    for name, problem in refusals.items():
        form[name].errors = [problem]
    documents_read = _read_documents(form) and drafts.documents_fit(form, continued)
    if refusals or not documents_read:
        return _render_referral_form(form, continued, 422)
    content = drafts.DraftContent(values, form.uploads, form.item_uploads)
    drafts.save_draft(continued, content, current_user)
    db.session.commit()
    flash(gettext("Draft saved. Continue it from this list whenever you are ready."), "success")
    return redirect(url_for("referrals.list_drafts"))


def _read_documents(form: forms.ReferralForm) -> bool:
    """Read the uploads as the form does when it is sent (size and type, how many),
    each refusal beside its field."""
    read = form.read_item_documents()
    try:
        form.validate_documents(form.documents)
    except ValidationError as refused:
        form.documents.errors = [*form.documents.errors, str(refused)]
        return False
    return read


def _render_referral_form(
    form: forms.ReferralForm, continued: drafts.ContinuedDraft | None, status: int
) -> tuple[str, int]:
    return (
        render_template(
            "referrals/new.html",
            form=form,
            draft=continued,
            contact_wording=current_wording(ConsentKind.CONTACT),
            sharing_wording=current_wording(ConsentKind.OUTCOME_SHARING),
        ),
        status,
    )


@bp.route("/drafts/<id:draft_id>/delete", methods=["GET", "POST"])
@office_only
def delete_draft(draft_id: int):
    """Ask, then delete a draft and its documents."""
    draft = drafts.get_draft_or_404(current_user, draft_id)
    if request.method == "POST":
        drafts.delete_draft(draft, current_user)
        db.session.commit()
        flash(gettext("Draft deleted."), "success")
        return redirect(url_for("referrals.list_drafts"))
    return render_template("referrals/delete_draft.html", draft=draft)
