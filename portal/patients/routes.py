"""The patient's pages: verify the date of birth, then choose a next step.

Opening a link changes nothing (mail and SMS scanners open links first); only the
patient's submitted forms write. Nothing about the referral is shown before the date
of birth matches.
"""

from __future__ import annotations

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    redirect,
    render_template,
    session,
    url_for,
)
from flask_babel import get_locale, gettext, ngettext
from sqlalchemy import select
from sqlalchemy.orm.exc import StaleDataError

from portal.auditing import record_audit
from portal.clock import utcnow
from portal.extensions import db
from portal.formatting import format_moment
from portal.i18n import remember_language, use_language
from portal.models import ContactMethod, PatientLanguage, PatientLink, Referral, Status
from portal.patients.forms import DateOfBirthForm, NextStepForm
from portal.patients.language import page_language
from portal.patients.links import LinkProblem, LinkRefused, problem_with, resolve
from portal.patients.services import (
    DateOfBirthCheck,
    PatientChoice,
    check_date_of_birth,
    record_patient_answer,
    visit_calendar_file,
)
from portal.query_args import choice_arg
from portal.referrals.workflow import TransitionRefused

bp = Blueprint("patients", __name__, url_prefix="/p")

VERIFIED_KEY = "patient_links_verified"


@bp.after_request
def _private(response: Response) -> Response:
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Robots-Tag"] = "noindex"
    return response


def _verified(link: PatientLink) -> bool:
    verified_at = session.get(VERIFIED_KEY, {}).get(link.public_id)
    limit = current_app.config["PATIENT_VERIFIED_FOR"].total_seconds()
    return verified_at is not None and utcnow().timestamp() - verified_at < limit


def _remember_verified(link: PatientLink) -> None:
    verified = dict(session.get(VERIFIED_KEY, {}))
    verified[link.public_id] = utcnow().timestamp()
    session[VERIFIED_KEY] = verified


def _open(
    token: str, *, allow_used: bool = False, switch: PatientLanguage | None = None
) -> PatientLink:
    """The link behind `token` (or LinkRefused), with the page set in the patient's
    language: the one they switched to on this link (`switch`, now), else the one their
    referral records."""
    try:
        link = resolve(token, allow_used=allow_used)
    except LinkRefused as refused:
        _speak(refused.link, switch)
        raise
    _speak(link, switch)
    return link


def _speak(link: PatientLink | None, switch: PatientLanguage | None) -> None:
    if link is not None and switch is not None:
        remember_language(link.public_id, switch)
    if link is None and switch is not None:
        use_language(switch)
    else:
        use_language(page_language(link))


def _problem(refused: LinkRefused):
    problem, status = refused.problem, 404 if refused.problem is LinkProblem.INVALID else 410
    if problem is LinkProblem.REVOKED and not _replaced(refused.link):
        # Revoked because the referral moved on (booked by phone, closed), not for a
        # newer link that still works: the patient is told it changed, not to find a
        # new link that would only fail them again.
        problem, status = "changed", 409
    return render_template(
        "patients/problem.html", problem=problem, phone=current_app.config["PRACTICE_PHONE"]
    ), status


def _replaced(link: PatientLink | None) -> bool:
    """Revoked because a newer link was sent that the patient can still use: only then
    are they sent to the link in our last message."""
    if link is None:
        return False
    newest = db.session.scalar(
        select(PatientLink)
        .where(PatientLink.referral_id == link.referral_id, PatientLink.id > link.id)
        .order_by(PatientLink.id.desc())
        .limit(1)
    )
    return newest is not None and problem_with(newest) is None


def _next_step_form(link: PatientLink) -> NextStepForm:
    """The choices: the offered times still ahead, a call, or no."""
    form = NextStepForm()
    form.set_slots([(slot.id, _slot_label(slot)) for slot in link.slots_ahead(utcnow())])
    return form


def _picked_a_passed_time(link: PatientLink, form: NextStepForm) -> bool:
    """The choice names a time this link offered that has passed, so the form no longer
    lists it (it passed while the page was open)."""
    listed = {value for value, _label in form.choice.choices}
    return form.choice.data in {f"slot-{slot.id}" for slot in link.slots} - listed


def _slot_label(slot) -> str:
    if slot.mode.value == "video":
        return gettext("%(when)s, video visit", when=format_moment(slot.starts_at))
    return gettext("%(when)s, phone visit", when=format_moment(slot.starts_at))


@bp.get("/<token:token>")
def next_step(token: str):
    """The link itself: ask for the date of birth, or show the choices once verified.
    `?lang=es` (or en) switches the patient's pages to that language and keeps it."""
    language = choice_arg("lang", {language.value for language in PatientLanguage})
    try:
        link = _open(token, allow_used=True, switch=PatientLanguage(language) if language else None)
    except LinkRefused as refused:
        return _problem(refused)
    if link.used_at is not None:
        if _verified(link):
            return _done_page(link)
        return _problem(LinkRefused(LinkProblem.USED, link))
    if not _verified(link):
        return _verify_page(DateOfBirthForm(formdata=None), link)
    return _choices_page(_next_step_form(link), link)


@bp.post("/<token:token>/verify")
def verify(token: str):
    """Check the date of birth; five wrong tries lock the link."""
    try:
        link = _open(token)
    except LinkRefused as refused:
        return _problem(refused)
    form = DateOfBirthForm()
    if not form.validate():
        return _verify_page(form, link, status=422)
    referral = db.session.get(Referral, link.referral_id)
    checked = check_date_of_birth(link, form.date_of_birth)
    # Neither is compared nor counted: the link locked while this try was on its way,
    # or its last tries are being checked by requests sent side by side with it.
    if checked is DateOfBirthCheck.LOCKED:
        return _problem(LinkRefused(LinkProblem.LOCKED, link))
    if checked is DateOfBirthCheck.BUSY:
        abort(429)
    if checked is DateOfBirthCheck.WRONG:
        record_audit(
            "patient_link.verify_failed",
            actor=None,
            referral=referral,
            attempts=link.failed_attempts,
            locked=link.locked_at is not None,
        )
        db.session.commit()
        if link.locked_at is not None:
            return _problem(LinkRefused(LinkProblem.LOCKED, link))
        return _verify_page(_wrong_date_form(form, link), link, status=422)
    _remember_verified(link)
    record_audit("patient_link.verified", actor=None, referral=referral)
    db.session.commit()
    return redirect(url_for("patients.next_step", token=token), 303)


def _wrong_date_form(form: DateOfBirthForm, link: PatientLink) -> DateOfBirthForm:
    tries_left = current_app.config["PATIENT_LINK_MAX_TRIES"] - link.failed_attempts
    message = gettext("That date of birth does not match our records.")
    if form.ambiguous:
        message += " " + gettext("Check the order: %(order)s.", order=form.order_hint())
    message += " " + ngettext(
        "You have %(num)d try left.", "You have %(num)d tries left.", tries_left
    )
    form.parts()[0].errors = [message]
    return form


@bp.post("/<token:token>/answer")
def answer(token: str):
    """Record the patient's choice: this is the only request that uses the link up."""
    try:
        link = _open(token)
    except LinkRefused as refused:
        return _problem(refused)
    if not _verified(link):
        return redirect(url_for("patients.next_step", token=token), 303)
    form = _next_step_form(link)
    if not form.validate():
        if _picked_a_passed_time(link, form):
            form.choice.errors = [
                gettext("That time has passed. Pick another, or ask us to call you.")
            ]
        return _choices_page(form, link, status=422)
    try:
        record_patient_answer(
            link,
            PatientChoice(
                answer=form.answer,
                contact=ContactMethod(form.contact.data),
                slot_id=form.slot_id,
                reason=form.reason.data or "",
                # The language they answered in: what they read best, whatever the
                # referral said.
                language=PatientLanguage(get_locale().language),
            ),
        )
        db.session.commit()
    except (TransitionRefused, StaleDataError):
        db.session.rollback()
        # The same answer sent twice (a double click): the first copy used the link, and
        # the patient sees what it recorded, not an error.
        used = db.session.scalar(select(PatientLink.used_at).where(PatientLink.id == link.id))
        if used is not None:
            return redirect(url_for("patients.next_step", token=token), 303)
        return render_template(
            "patients/problem.html", problem="changed", phone=current_app.config["PRACTICE_PHONE"]
        ), 409
    return redirect(url_for("patients.next_step", token=token), 303)


@bp.get("/<token:token>/visit.ics")
def calendar_file(token: str):
    """The booked visit as a calendar file, for the patient who booked it."""
    try:
        link = _open(token, allow_used=True)
    except LinkRefused as refused:
        return _problem(refused)
    referral = db.session.get(Referral, link.referral_id)
    slot = link.chosen_slot
    booked = slot is not None and referral.appointment_at == slot.starts_at
    if not _verified(link) or not booked or referral.status is not Status.SCHEDULED:
        return redirect(url_for("patients.next_step", token=token), 303)
    name, text = visit_calendar_file(referral, slot)
    return Response(
        text,
        mimetype="text/calendar",
        headers={"Content-Disposition": f'attachment; filename="{name}"'},
    )


def _verify_page(form: DateOfBirthForm, link: PatientLink, status: int = 200):
    return render_template(
        "patients/verify.html", form=form, practice=current_app.config["PRACTICE_NAME"]
    ), status


def _choices_page(form: NextStepForm, link: PatientLink, status: int = 200):
    return render_template(
        "patients/next_step.html",
        form=form,
        link=link,
        times_passed=link.offered_times_passed(utcnow()),
        practice=current_app.config["PRACTICE_NAME"],
    ), status


def _done_page(link: PatientLink):
    referral = db.session.get(Referral, link.referral_id)
    return render_template(
        "patients/done.html",
        link=link,
        slot=link.chosen_slot,
        mode=link.chosen_slot.mode.value if link.chosen_slot else None,
        referral_status=referral.status,
        referral_appointment_at=referral.appointment_at,
        practice=current_app.config["PRACTICE_NAME"],
        phone=current_app.config["PRACTICE_PHONE"],
    )
