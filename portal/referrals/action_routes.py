"""Acting on a referral: the workflow actions, breach reasons and the partner's answer
to a request for information. Each re-renders the referral page (routes._render_detail)
when it is refused, with what the user typed kept."""

from __future__ import annotations

from typing import Any

from flask import abort, flash, redirect, render_template, url_for
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from htmx_flask import request
from sqlalchemy.orm.exc import StaleDataError

from portal.accounts.sessions import roles_required
from portal.auditing import record_audit
from portal.extensions import db
from portal.models import STAFF_ROLES, Referral, Role, SlaClock, Status
from portal.referrals import forms, services
from portal.referrals.access import get_referral_or_404
from portal.referrals.actions import ACTIONS, form_actions, new_action_form, perform
from portal.referrals.needs_info import InfoAnswer, answer_information, open_request
from portal.referrals.routes import _answer_form, _render_detail, bp
from portal.referrals.workflow import (
    ActionForbidden,
    EditConflict,
    TransitionRefused,
    allowed_actions,
    repeated_since,
)
from portal.sla.clocks import record_breach_reason

CONFLICT_MESSAGE = _l(
    "Someone else changed this referral while you were working on it, so your change was "
    "not saved. What changed is listed below; your entries are kept. Submit again to "
    "apply them to the referral as it is now."
)


@bp.get("/statuses")
@login_required
def statuses():
    """What each status means and what each role can do from it, read from the
    action declarations (portal/referrals/actions.py)."""
    by_status = {
        status: [action for action in ACTIONS.values() if status in action.sources]
        for status in Status
    }
    return render_template("referrals/statuses.html", by_status=by_status)


@bp.post("/<ref:reference>/actions/<action>")
@login_required
def act(reference: str, action: str):
    """Perform one workflow action; refusals and conflicts re-render with the input kept."""
    referral = get_referral_or_404(current_user, reference)
    declared = form_actions().get(action)
    if declared is None:
        abort(404)
    form = new_action_form(declared, referral)
    if not form.validate():
        return _render_detail(
            referral,
            failed_action=action,
            failed_form=form,
            message=gettext("Check the highlighted fields."),
            status=422,
        )
    _past_bookkeeping(form, referral)
    seen = form.seen_event.data
    if seen is not None and repeated_since(referral, action, current_user, seen):
        repeated = gettext(
            "You did this already: “%(action)s” was saved after this page was loaded (it "
            "is listed below), so it was not done twice. Your entries are kept: submit "
            "again to do it once more.",
            action=declared.label,
        )
        return _refused(referral, action, form, repeated, 409, conflict=True, yours=True)
    try:
        perform(declared, referral, current_user, form)
        db.session.commit()
    except ActionForbidden as forbidden:
        db.session.rollback()
        return _refused(referral, action, form, str(forbidden), 403)
    except TransitionRefused as refused:
        db.session.rollback()
        return _refused(referral, action, form, str(refused), 409)
    except (EditConflict, StaleDataError):
        db.session.rollback()
        return _refused(referral, action, form, str(CONFLICT_MESSAGE), 409, conflict=True)
    flash(str(declared.done), "success")
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
        errors = [error for field in (form.reason, form.other_reason) for error in field.errors]
        return _render_detail(
            referral,
            message=str(errors[0]) if errors else gettext("Choose a breach reason."),
            status=422,
            failed_breach=(clock.id, form),
        )
    if not record_breach_reason(clock, form.reason_text, current_user):
        db.session.rollback()
        return _render_detail(
            referral,
            message=gettext(
                "A reason for this missed target was already recorded (shown below), so "
                "yours was not saved."
            ),
            status=409,
        )
    record_audit(
        "referral.breach_reason", actor=current_user, referral=referral, stage=clock.stage.value
    )
    db.session.commit()
    flash(gettext("Breach reason recorded."), "success")
    return redirect(url_for("referrals.detail", reference=reference))


@bp.post("/<ref:reference>/information")
@roles_required(Role.PARTNER)
def answer_information_request(reference: str):
    """The partner answers intake's request in place (an htmx form; works without JS)."""
    referral = get_referral_or_404(current_user, reference)
    form = _answer_form(referral)
    if form is None:
        flash(gettext("Nothing is being asked for on this referral any more."), "info")
        return redirect(url_for("referrals.detail", reference=reference))
    still_missing, conflict = None, False
    if form.validate():
        _past_bookkeeping(form, referral)
        try:
            _event, still_missing = answer_information(
                referral,
                current_user,
                InfoAnswer(form.item_answers(), form.item_uploads, form.message.data or ""),
                expected_version=form.version.data,
            )
        except TransitionRefused as refused:
            db.session.rollback()
            form.message.errors = [str(refused)]
        except (EditConflict, StaleDataError):
            db.session.rollback()
            db.session.expire_all()
            referral, conflict = get_referral_or_404(current_user, reference), True
            form.message.errors = [
                gettext(
                    "The referral changed while you were answering (see its timeline), so "
                    "nothing was sent. Check what is still asked for and send again; attach "
                    "any documents again."
                )
            ]
        else:
            db.session.commit()
            if not request.htmx:
                flash(
                    gettext("Thank you: everything asked for has been sent.")
                    if not still_missing
                    else gettext("Thank you. Some items are still missing."),
                    "success",
                )
                return redirect(url_for("referrals.detail", reference=reference))
            form = _answer_form(referral, formdata=None)
    status = 409 if conflict else 422 if form is not None and form.errors else 200
    if form is not None and (conflict or not form.version.raw_data):
        # After a conflict (or for a fresh form) the next answer is to the referral as it
        # is now; after a plain form error the version they loaded stays.
        form.keep_for_retry(referral.version, services.last_event_id(referral, current_user))
    if request.htmx:
        return render_template(
            "referrals/_needs_info.html",
            referral=referral,
            info_request=open_request(referral),
            answer_form=form,
            answer_result=still_missing,
        ), status
    return _render_detail(referral, answer_form=form, status=status)


def _past_bookkeeping(form: forms.VersionedForm, referral: Referral) -> None:
    """For the referring office: when only the practice's own bookkeeping (a reminder
    sent, a staff note) moved the version since their page was loaded, nothing they can
    see changed, and their action is no conflict: it goes ahead on the version now."""
    seen = form.seen_event.data
    if (
        current_user.is_partner_user
        and seen is not None
        and form.version.data != referral.version
        and services.last_event_id(referral, current_user) <= seen
    ):
        form.version.data = referral.version


def _refused(
    referral: Referral,
    action: str,
    form: Any,
    message: str,
    status: int,
    *,
    conflict: bool = False,
    yours: bool = False,
):
    """The referral page again, as it is now, with the user's form kept. After a
    conflict it lists what others did since the user's page was loaded, and says so if
    their action is no longer possible (`yours`: the change was the user's own repeat,
    and `message` says so)."""
    db.session.expire_all()
    referral = get_referral_or_404(current_user, referral.reference)
    changes_since = None
    if conflict:
        seen = getattr(form, "seen_event", None)
        seen_id = seen.data if seen is not None and seen.data else 0
        changes_since = [e for e in services.timeline(referral, current_user) if e.id > seen_id]
        allowed = {t.action for t in allowed_actions(referral, current_user)}
        if action in ACTIONS and action not in allowed and not yours:
            message = gettext(
                "Someone else changed this referral while you were working on it: it is now "
                "%(status)s, so “%(action)s” is no longer possible. What changed is listed below.",
                status=referral.status.label.lower(),
                action=ACTIONS[action].label,
            )
    return _render_detail(
        referral,
        failed_action=action,
        failed_form=form,
        message=message,
        status=status,
        changes_since=changes_since,
    )
