"""Sign-in, sign-out and accepting an invitation."""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user

from portal.accounts.forms import SetPasswordForm, SignInForm
from portal.accounts.services import (
    InvitationInvalid,
    SignInRefused,
    accept_invitation,
    authenticate,
    load_invitation,
)
from portal.auditing import record_audit
from portal.extensions import db
from portal.models import Role

bp = Blueprint("accounts", __name__)


def home_for(role: Role) -> str:
    if role is Role.PARTNER:
        return url_for("referrals.index")
    if role is Role.ADMIN:
        return url_for("admin.partners")
    return url_for("intake.queue")


def _safe_next(target: str | None) -> str | None:
    """Only same-site paths are followed after sign-in."""
    if not target:
        return None
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


@bp.route("/")
def home():
    """Send each role to where its work is."""
    if current_user.is_authenticated:
        return redirect(home_for(current_user.role))
    return redirect(url_for("accounts.sign_in"))


@bp.route("/sign-in", methods=["GET", "POST"])
def sign_in():
    """Sign in with email and password."""
    if current_user.is_authenticated:
        return redirect(home_for(current_user.role))
    form = SignInForm()
    error = None
    if form.validate_on_submit():
        try:
            user = authenticate(form.email.data, form.password.data, request.remote_addr or "")
        except SignInRefused as refused:
            db.session.commit()  # the failed attempt counts towards throttling
            error = str(refused)
        else:
            db.session.commit()
            session.clear()
            login_user(user)
            return redirect(_safe_next(request.args.get("next")) or home_for(user.role))
    elif request.method == "POST":
        error = "Enter your email address and password."
    return render_template("accounts/sign_in.html", form=form, error=error), (401 if error else 200)


@bp.post("/sign-out")
@login_required
def sign_out():
    """Sign out and forget the session."""
    record_audit("sign_out", actor=current_user, target_type="user", target_id=current_user.id)
    db.session.commit()
    logout_user()
    session.clear()
    flash("You are signed out.", "info")
    return redirect(url_for("accounts.sign_in"))


@bp.route("/invitations/<token>", methods=["GET", "POST"])
def accept(token: str):
    """Set a password from an invitation link."""
    try:
        invitation = load_invitation(token)
    except InvitationInvalid as invalid:
        return render_template("accounts/invitation_invalid.html", message=str(invalid)), 410
    form = SetPasswordForm()
    if form.validate_on_submit():
        user = accept_invitation(invitation, form.password.data)
        db.session.commit()
        if current_user.is_authenticated:
            logout_user()
        session.clear()
        login_user(user)
        flash("Your password is set. Welcome to the referral portal.", "success")
        return redirect(home_for(user.role))
    return render_template("accounts/accept_invitation.html", form=form, invitation=invitation)
