"""Signing in and out, the second factor, forgotten passwords, and a person's own
account: password, second factor and signed-in sessions."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext, ngettext
from flask_login import current_user, login_required

from portal.accounts.forms import (
    ChangePasswordForm,
    ConfirmWithCodeForm,
    ForgotPasswordForm,
    NewPasswordForm,
    SecondFactorForm,
    SignInForm,
)
from portal.accounts.second_factor import (
    begin_enrolment,
    finish_enrolment,
    qr_code_svg,
    recovery_codes_left,
    remove_second_factor,
    replace_recovery_codes,
)
from portal.accounts.services import (
    InvitationInvalid,
    ResetInvalid,
    SignInRefused,
    SignInThrottled,
    accept_invitation,
    authenticate,
    complete_password_reset,
    confirm_code,
    confirm_password,
    load_invitation,
    load_password_reset,
    request_password_reset,
    reset_requests_from,
    set_password,
    verify_second_factor,
)
from portal.accounts.sessions import (
    PendingSessionGone,
    active_sessions,
    client_address,
    complete_second_factor,
    current_session,
    end_all_sessions,
    end_session,
    pending_session,
    sign_out_this_browser,
    start_session,
)
from portal.accounts.throttling import REQUEST_WINDOW
from portal.extensions import db
from portal.models import Role, User, UserSession

bp = Blueprint("accounts", __name__)

RESET_TOKEN_KEY = "password_reset_token"  # noqa: S105 - a session key name
NEXT_KEY = "after_sign_in"


def home_for(role: Role) -> str:
    if role is Role.PARTNER:
        return url_for("referrals.index")
    if role is Role.ADMIN:
        return url_for("admin.partners")
    return url_for("intake.queue")


NEXT_MAX_LENGTH = 2000


def _safe_next(target: str | None) -> str | None:
    """Only same-site paths are followed after sign-in (and only short ones: the path
    waits in the state cookie, which a browser drops past 4 kB)."""
    if not target or len(target) > NEXT_MAX_LENGTH:
        return None
    try:
        parts = urlsplit(target)
    except ValueError:  # e.g. "//[" : an unclosed IPv6 host
        return None
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    if "\\" in target or any(ord(c) < 32 for c in target):
        return None
    return target


def _throttled(template: str, refused: SignInThrottled, **context):
    response = render_template(template, error=str(refused), **context)
    return response, 429, {"Retry-After": str(refused.wait.seconds)}


@bp.route("/")
def home():
    """Send each role to where its work is."""
    if current_user.is_authenticated:
        return redirect(home_for(current_user.role))
    return redirect(url_for("accounts.sign_in"))


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    """Sign in with email and password (then a second factor, where one is needed)."""
    if current_user.is_authenticated:
        return redirect(home_for(current_user.role))
    form = SignInForm()
    error = None
    if form.validate_on_submit():
        try:
            user = authenticate(form.email.data, form.password.data, client_address())
        except SignInThrottled as refused:
            db.session.commit()
            return _throttled("accounts/sign_in.html", refused, form=form)
        except SignInRefused as refused:
            db.session.commit()  # the failed attempt counts towards throttling
            error = str(refused)
        else:
            next_page = _safe_next(request.args.get("next"))
            session.clear()  # a fresh CSRF seed for the signed-in browser
            start_session(user, authenticated=not user.needs_second_factor)
            db.session.commit()
            if user.needs_second_factor:
                if next_page:
                    session[NEXT_KEY] = next_page
                return redirect(url_for("accounts.second_factor"))
            return redirect(next_page or home_for(user.role))
    elif request.method == "POST":
        # A field the form refused (control characters, far too long) says why; an
        # empty one gets the usual prompt. Neither is an attempt at an account.
        refusals = [e for name in ("email", "password") for e in form[name].errors]
        message = next((e for e in refusals if "required" not in e.lower()), None)
        error = message or gettext("Enter your email address and password.")
        return render_template("accounts/sign_in.html", form=form, error=error), 422
    return render_template("accounts/sign_in.html", form=form, error=error), (401 if error else 200)


@bp.errorhandler(PendingSessionGone)
def _pending_session_gone(_error):
    db.session.rollback()
    flash(gettext("Your sign-in was interrupted. Sign in again to continue."), "info")
    return redirect(url_for("accounts.sign_in"))


def _pending_or_restart() -> UserSession:
    row = pending_session()
    if row is None:
        flash(gettext("Sign in again to continue."), "info")
        abort(redirect(url_for("accounts.sign_in")))
    return row


@bp.route("/sign-in/code", methods=["GET", "POST"])
def second_factor():
    """The second step of signing in: a code from the app, or a recovery code."""
    row = _pending_or_restart()
    user = db.session.get(User, row.user_id)
    if not user.has_second_factor:
        return redirect(url_for("accounts.set_up_second_factor"))
    form = SecondFactorForm()
    error = None
    if form.validate_on_submit():
        try:
            kind = verify_second_factor(user, form.code.data, client_address())
        except SignInThrottled as refused:
            db.session.commit()
            return _throttled("accounts/second_factor.html", refused, form=form)
        except SignInRefused as refused:
            db.session.commit()
            error = str(refused)
        else:
            _finish_sign_in(row)
            left = recovery_codes_left(user) if kind == "recovery_code" else None
            db.session.commit()
            if left is not None:
                flash(
                    gettext(
                        "You signed in with a recovery code; %(left)s left. "
                        "Make new ones on your account page if you are running out.",
                        left=left,
                    ),
                    "info",
                )
            return redirect(_safe_next(session.pop(NEXT_KEY, None)) or home_for(user.role))
    elif request.method == "POST":
        error = gettext("Enter the code.")
    return render_template("accounts/second_factor.html", form=form, error=error), (
        401 if error else 200
    )


@bp.route("/sign-in/set-up-code", methods=["GET", "POST"])
def set_up_second_factor():
    """Set up the authenticator app: at first sign-in (staff, or where a partner
    requires it), or from the account page by choice."""
    row = pending_session()
    if row is not None:
        user = db.session.get(User, row.user_id)
    elif current_user.is_authenticated:
        user, row = current_user._get_current_object(), current_session()
    else:
        flash(gettext("Sign in again to continue."), "info")
        return redirect(url_for("accounts.sign_in"))
    if user.has_second_factor:
        return redirect(url_for("accounts.account"))
    form = ConfirmWithCodeForm()
    error = None
    if form.validate_on_submit():
        codes = finish_enrolment(row, user, form.code.data)
        if codes is None:
            error = gettext(
                "That code does not match. Check the time on your phone and try the newest code."
            )
        else:
            next_page = _safe_next(session.get(NEXT_KEY)) or home_for(user.role)
            if not row.authenticated:
                _finish_sign_in(row)
            db.session.commit()
            return render_template(
                "accounts/recovery_codes.html", codes=codes, next_page=next_page, first_time=True
            )
    secret = begin_enrolment(row)
    db.session.commit()
    return render_template(
        "accounts/set_up_second_factor.html",
        form=form,
        error=error,
        qr_code=qr_code_svg(user.email, secret),
        secret=secret,
        required=not row.authenticated,
    ), (422 if error or form.errors else 200)


def _finish_sign_in(row: UserSession) -> None:
    """The second factor is given: a new session under a new token, and a fresh state
    cookie (nothing planted before this step survives it)."""
    complete_second_factor(row)
    next_page = session.get(NEXT_KEY)
    session.clear()
    if next_page:
        session[NEXT_KEY] = next_page


@bp.post("/sign-out")
def sign_out():
    """Sign out: the session ends on the server, so a copied cookie stops working too."""
    user = current_user if current_user.is_authenticated else None
    if user is None and pending_session() is not None:
        user = db.session.get(User, pending_session().user_id)
    if user is not None:
        sign_out_this_browser(user)
        db.session.commit()
    session.clear()
    flash(gettext("You are signed out."), "info")
    return redirect(url_for("accounts.sign_in"))


@bp.route("/invitations/<token:token>", methods=["GET", "POST"])
def accept(token: str):
    """Set a password from an invitation link."""
    try:
        invitation = load_invitation(token)
    except InvitationInvalid as invalid:
        return render_template("accounts/link_invalid.html", message=str(invalid)), 410
    form = NewPasswordForm(account=invitation.user)
    if form.validate_on_submit():
        user = accept_invitation(invitation, form.password.data)
        session.clear()
        start_session(user, authenticated=not user.needs_second_factor)
        db.session.commit()
        if user.needs_second_factor:
            flash(gettext("Your password is set. Now set up your second factor."), "success")
            return redirect(url_for("accounts.set_up_second_factor"))
        flash(gettext("Your password is set. Welcome to the referral portal."), "success")
        return redirect(home_for(user.role))
    return render_template(
        "accounts/accept_invitation.html", form=form, invitation=invitation
    ), 422 if form.errors else 200


# --- Forgotten passwords -------------------------------------------------------------


@bp.route("/password/forgot", methods=["GET", "POST"])
def forgot_password():
    """Ask for a reset link; the answer is the same whether or not the email exists."""
    form = ForgotPasswordForm()
    if form.validate_on_submit():
        address = client_address()
        if reset_requests_from(address) >= current_app.config["PASSWORD_RESET_PER_ADDRESS_HOURLY"]:
            return (
                render_template(
                    "accounts/forgot_password.html",
                    form=form,
                    error=gettext(
                        "Too many reset requests from your network. Wait an hour and try again, "
                        "or ask your administrator."
                    ),
                ),
                429,
                {"Retry-After": str(int(REQUEST_WINDOW.total_seconds()))},
            )
        request_password_reset(form.email.data, address)
        db.session.commit()
        return render_template("accounts/forgot_password_sent.html")
    return render_template("accounts/forgot_password.html", form=form), (
        422 if form.errors else 200
    )


@bp.route("/password/reset", methods=["GET", "POST"])
def reset_password():
    """Choose a new password from an emailed link (single use, PASSWORD_RESET_MAX_AGE)."""
    token = request.args.get("token")
    if token is not None:
        # Keep the token out of the address bar, history and any later Referer.
        session[RESET_TOKEN_KEY] = token[:100]
        return redirect(url_for("accounts.reset_password"))
    try:
        reset = load_password_reset(session.get(RESET_TOKEN_KEY, ""))
    except ResetInvalid as invalid:
        return render_template("accounts/link_invalid.html", message=str(invalid)), 410
    form = NewPasswordForm(account=reset.user)
    if form.validate_on_submit():
        try:
            complete_password_reset(reset, form.password.data, client_address())
        except ResetInvalid as invalid:
            db.session.rollback()
            return render_template("accounts/link_invalid.html", message=str(invalid)), 410
        db.session.commit()
        session.clear()
        flash(
            gettext("Your password is changed and every device was signed out. Sign in now."),
            "success",
        )
        return redirect(url_for("accounts.sign_in"))
    return render_template("accounts/reset_password.html", form=form), (422 if form.errors else 200)


# --- Your account --------------------------------------------------------------------


@bp.get("/account")
@login_required
def account():
    """Your password, second factor and signed-in sessions."""
    return render_template(
        "accounts/account.html",
        codes_left=recovery_codes_left(current_user) if current_user.has_second_factor else 0,
        sessions=active_sessions(current_user.id),
        current=current_session(),
        code_form=ConfirmWithCodeForm(formdata=None),
    )


@bp.route("/account/password", methods=["GET", "POST"])
@login_required
def change_password():
    """Change your password; every other session ends, this one carries on."""
    form = ChangePasswordForm(account=current_user)
    if form.validate_on_submit():
        try:
            confirm_password(current_user, form.current_password.data, client_address())
        except SignInRefused as refused:
            db.session.commit()  # a wrong password counts towards throttling
            form.current_password.errors.append(str(refused))
        else:
            user = current_user._get_current_object()
            set_password(user, form.password.data, by=user, reason="changed")
            start_session(user, authenticated=True)
            db.session.commit()
            flash(
                gettext("Your password is changed. Every other device was signed out."), "success"
            )
            return redirect(url_for("accounts.account"))
    return render_template("accounts/change_password.html", form=form), (
        422 if form.errors else 200
    )


def _confirm_code_or_back(form: ConfirmWithCodeForm):
    """None when the form holds a right code; otherwise where to send the user back."""
    try:
        if not form.validate_on_submit():
            raise SignInRefused(gettext("Enter the code from your authenticator app."))
        confirm_code(current_user, form.code.data, client_address())
    except SignInRefused as refused:
        db.session.commit()  # a wrong code counts towards throttling
        flash(f"{refused} " + gettext("Nothing was changed."), "error")
        return redirect(url_for("accounts.account"))
    return None


@bp.post("/account/recovery-codes")
@login_required
def new_recovery_codes():
    """Replace your recovery codes (asks for a current code first)."""
    if not current_user.has_second_factor:
        abort(404)
    refused = _confirm_code_or_back(ConfirmWithCodeForm())
    if refused is not None:
        return refused
    codes = replace_recovery_codes(current_user)
    db.session.commit()
    return render_template(
        "accounts/recovery_codes.html",
        codes=codes,
        next_page=url_for("accounts.account"),
        first_time=False,
    )


@bp.post("/account/second-factor/off")
@login_required
def turn_off_second_factor():
    """Partner users who chose a second factor may turn it off, unless it is required."""
    user = current_user._get_current_object()
    if not user.has_second_factor or user.is_staff:
        abort(403)
    if user.partner is not None and user.partner.require_second_factor:
        abort(403)
    refused = _confirm_code_or_back(ConfirmWithCodeForm())
    if refused is not None:
        return refused
    remove_second_factor(user, by=user, reason="turned_off")
    db.session.commit()
    flash(gettext("Your second factor is off. You sign in with your password alone."), "success")
    return redirect(url_for("accounts.account"))


@bp.post("/account/sessions/<id:session_id>/end")
@login_required
def end_one_session(session_id: int):
    """Sign out one of your sessions (this browser included)."""
    row = db.session.get(UserSession, session_id)
    if row is None or row.user_id != current_user.id:
        abort(404)
    this_one = current_session()
    if this_one is not None and row.id == this_one.id:
        return sign_out()
    end_session(row, by=current_user, reason="ended_by_user")
    db.session.commit()
    flash(gettext("That session is signed out."), "success")
    return redirect(url_for("accounts.account"))


@bp.post("/account/sessions/end-others")
@login_required
def end_other_sessions():
    """Sign out everywhere else."""
    ended = end_all_sessions(
        current_user, by=current_user, reason="ended_by_user", keep=current_session()
    )
    db.session.commit()
    flash(
        ngettext(
            "Signed out of %(num)d other session.", "Signed out of %(num)d other sessions.", ended
        ),
        "success",
    )
    return redirect(url_for("accounts.account"))
