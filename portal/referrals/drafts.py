"""Referral drafts: the submission form saved as typed, to finish later.

A draft keeps every field as typed and any documents, checked only against what any
input may hold (PortalForm's bounds: no control characters, declared lengths) and
what a document may be (size and type); the full checks run when it is submitted.
Drafts belong to the referring office: any of its users may continue one, nobody
else sees them. Submitting a draft deletes it in the referral's own transaction.

The operations here flush and audit but never commit (the route commits). Audit
entries carry the draft's id and counts, never what was typed.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from flask import abort, current_app
from flask_babel import gettext
from sqlalchemy import Select, delete, false, select
from werkzeug.datastructures import MultiDict
from wtforms import BooleanField, DateField, Field, FileField, IntegerField, SelectMultipleField
from wtforms.fields.choices import SelectFieldBase
from wtforms.validators import NumberRange, Optional, ValidationError
from wtforms.widgets import HiddenInput

from portal.auditing import record_audit
from portal.clock import utcnow
from portal.converters import BIGGEST_ID
from portal.extensions import db
from portal.forms import PortalForm, boundary_refusal
from portal.models import DraftDocument, ReferralDraft, User
from portal.referrals.document_store import stored_file_columns
from portal.referrals.documents import Upload
from portal.referrals.forms import ReferralForm
from portal.referrals.services import ReferralSubmission

AUDIT_TARGET = "referral_draft"


# --- Which drafts a user may see -------------------------------------------------------


def office_drafts(user: User) -> Select[tuple[ReferralDraft]]:
    """A select of the drafts `user` may see: their office's; none for staff."""
    if not user.is_partner_user or user.partner_id is None:
        return select(ReferralDraft).where(false())
    return select(ReferralDraft).where(ReferralDraft.partner_id == user.partner_id)


def find_draft(user: User, draft_id: int) -> ReferralDraft | None:
    return db.session.scalar(office_drafts(user).where(ReferralDraft.id == draft_id))


def get_draft_or_404(user: User, draft_id: int) -> ReferralDraft:
    """The draft, or 404 whether it does not exist or belongs to another office."""
    return find_draft(user, draft_id) or abort(404)


def expires_at(draft: ReferralDraft) -> datetime:
    return draft.saved_at + timedelta(days=current_app.config["DRAFT_DAYS"])


# --- The form as typed -------------------------------------------------------------------


def typed_values(form: ReferralForm) -> tuple[dict[str, Any], dict[str, str]]:
    """What a draft keeps of `form` (field name -> text, or True for a ticked box; empty
    fields left out), and why a field cannot be kept (field name -> message)."""
    values: dict[str, Any] = {}
    refusals: dict[str, str] = {}
    for name, field in form._fields.items():
        if isinstance(field, FileField) or name == "csrf_token":
            continue
        problem = _refusal(form, field)
        if problem is not None:
            refusals[name] = problem
            continue
        value = _as_typed(field)
        if value:
            values[name] = value
    return values, refusals


def _refusal(form: PortalForm, field: Field) -> str | None:
    """Outside what any field may hold, or not a value the field's input can send (a
    date that is not one, a choice not offered): nothing a browser sends is refused."""
    problem = boundary_refusal(field)
    if problem is None and field.process_errors and any(field.raw_data or []):
        problem = str(field.process_errors[0])
    if problem is None and isinstance(field, SelectFieldBase) and field.data not in (None, ""):
        try:
            field.pre_validate(form)
        except ValidationError as refused:
            problem = str(refused)
    return problem


def _as_typed(field: Field) -> str | bool:
    if isinstance(field, BooleanField):
        return bool(field.data)
    if isinstance(field, DateField):
        return field.data.isoformat() if field.data else ""
    return field.data or ""


def formdata_of(draft: ReferralDraft) -> MultiDict:
    """The draft's fields as a browser would post them, to fill the referral form.

    Not its submission token: a continued draft is a form opened anew, so the page it
    was saved from (reached again with Back) can never send the same referral."""
    return MultiDict(
        {
            name: ("y" if value is True else value)
            for name, value in draft.fields.items()
            if name != "submission_token"
        }
    )


class ContinuedDraftForm(PortalForm):
    """The referral form's part that names the draft it continues, and the draft's
    documents the user ticked to remove."""

    class Meta(PortalForm.Meta):
        csrf = False  # the referral form around it carries the token

    draft = IntegerField(
        widget=HiddenInput(), validators=[Optional(), NumberRange(min=1, max=BIGGEST_ID)]
    )
    remove_document = SelectMultipleField(validate_choice=False)


@dataclass(frozen=True)
class ContinuedDraft:
    """A draft the referral form on the page continues."""

    draft: ReferralDraft
    removed_document_ids: frozenset[int] = frozenset()

    @property
    def id(self) -> int:
        return self.draft.id

    @property
    def expires_at(self) -> datetime:
        return expires_at(self.draft)

    @property
    def kept_documents(self) -> list[DraftDocument]:
        return [d for d in self.draft.documents if d.id not in self.removed_document_ids]


class DraftGone(Exception):
    """The form continues a draft that was deleted meanwhile (by a colleague, or expired):
    its saved documents are gone with it."""


def continued_draft(user: User, draft: ReferralDraft | None = None) -> ContinuedDraft | None:
    """The office's draft the posted referral form continues (`draft`, else the one it
    names), with the documents ticked for removal; None when it names none. DraftGone
    when it names one that no longer exists, so nothing is sent without saying so."""
    form = ContinuedDraftForm()
    valid = form.validate()
    if draft is None and valid and form.draft.data is not None:
        draft = find_draft(user, form.draft.data)
        if draft is None:
            raise DraftGone()
    if draft is None:
        return None
    ticked = set(form.remove_document.data or []) if valid else set()
    removed = frozenset(d.id for d in draft.documents if str(d.id) in ticked)
    return ContinuedDraft(draft, removed)


def documents_fit(form: ReferralForm, continued: ContinuedDraft | None) -> bool:
    """The draft's kept documents and the new uploads together stay within the limit;
    if not, the documents field says so. Call after the form has read its uploads."""
    kept = [d for d in continued.kept_documents if d.required_item_id is None] if continued else []
    limit = current_app.config["DOCUMENT_MAX_COUNT"]
    if len(kept) + len(form.uploads) <= limit:
        return True
    form.documents.errors = [
        *form.documents.errors,
        gettext(
            "Attach at most %(limit)s documents, counting the %(kept)s kept with the draft.",
            limit=limit,
            kept=len(kept),
        ),
    ]
    return False


# --- Operations ---------------------------------------------------------------------------


@dataclass(frozen=True)
class DraftContent:
    """What one save of the form adds to a draft."""

    values: dict[str, Any]
    uploads: list[Upload]
    item_uploads: dict[int, Upload]  # by RequiredItem id


def save_draft(
    continued: ContinuedDraft | None, content: DraftContent, user: User
) -> ReferralDraft:
    """Create the office's draft, or replace the fields of the one being continued; keep
    its documents except those removed or replaced by a new upload for the same item.
    A form saved twice (a double click, Back and save again) stays one draft."""
    now = utcnow()
    draft = continued.draft if continued else saved_from_form(user, content.values)
    created = draft is None
    if draft is None:
        draft = ReferralDraft(partner_id=user.partner_id, created_by_id=user.id, created_at=now)
        db.session.add(draft)
    removed = continued.removed_document_ids if continued else frozenset()
    for document in list(draft.documents):
        if document.id in removed or document.required_item_id in content.item_uploads:
            draft.documents.remove(document)
    uploads = [(None, upload) for upload in content.uploads]
    for item_id, upload in [*uploads, *content.item_uploads.items()]:
        columns = stored_file_columns(upload, user, now)
        draft.documents.append(DraftDocument(required_item_id=item_id, **columns))
    draft.fields = content.values
    draft.saved_by_id, draft.saved_at = user.id, now
    db.session.flush()
    _audit("draft.saved", draft, user, created=created, documents=len(draft.documents))
    return draft


def saved_from_form(user: User, values: dict[str, Any]) -> ReferralDraft | None:
    """The office's draft saved from the form with these values' submission token."""
    token = values.get("submission_token")
    if not token:
        return None
    return db.session.scalar(
        office_drafts(user).where(ReferralDraft.fields["submission_token"].as_string() == token)
    )


def record_draft_opened(draft: ReferralDraft, user: User) -> None:
    _audit("draft.opened", draft, user)


def delete_draft(draft: ReferralDraft, user: User) -> None:
    _audit("draft.deleted", draft, user, documents=len(draft.documents))
    db.session.delete(draft)


def finish_draft(
    continued: ContinuedDraft | None, submission: ReferralSubmission, user: User
) -> ReferralSubmission:
    """`submission` with the draft's kept documents added, and the draft deleted: in
    the session, so the referral's commit (submit_referral) deletes it in the same
    transaction. A new upload for a required item replaces the draft's; a draft's item
    document the chosen service line does not ask for goes with the other documents."""
    if continued is None:
        return submission
    asked_for = {item.id for item in submission.service_line.required_items}
    documents: list[Upload] = []
    item_documents = dict(submission.item_documents)
    for document in continued.kept_documents:
        upload = Upload(document.filename, document.content_type, document.content)
        if document.required_item_id in asked_for:
            item_documents.setdefault(document.required_item_id, upload)
        else:
            documents.append(upload)
    _audit("draft.submitted", continued.draft, user, documents=len(continued.kept_documents))
    db.session.delete(continued.draft)
    return dataclasses.replace(
        submission,
        documents=[*documents, *submission.documents],
        item_documents=item_documents,
    )


def delete_expired_drafts(batch_size: int = 500) -> int:
    """Delete drafts not saved for DRAFT_DAYS (the jobs process runs this), auditing
    each as deleted by the system. Returns how many were deleted."""
    cutoff = utcnow() - timedelta(days=current_app.config["DRAFT_DAYS"])
    rows = db.session.execute(
        select(ReferralDraft.id, ReferralDraft.partner_id)
        .where(ReferralDraft.saved_at <= cutoff)
        .order_by(ReferralDraft.saved_at)
        .limit(batch_size)
    ).all()
    for draft_id, partner_id in rows:
        record_audit(
            "draft.expired",
            actor=None,
            target_type=AUDIT_TARGET,
            target_id=draft_id,
            partner_id=partner_id,
        )
    if rows:
        # Their documents go with them (ON DELETE CASCADE).
        db.session.execute(delete(ReferralDraft).where(ReferralDraft.id.in_([r.id for r in rows])))
    return len(rows)


def _audit(action: str, draft: ReferralDraft, user: User, **detail: Any) -> None:
    record_audit(
        action,
        actor=user,
        target_type=AUDIT_TARGET,
        target_id=draft.id,
        partner_id=draft.partner_id,
        **detail,
    )
