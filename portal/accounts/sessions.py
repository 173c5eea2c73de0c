"""Flask-Login set-up, role checks and the staff idle timeout."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Flask, abort, current_app, flash, redirect, request, session, url_for
from flask_login import current_user, login_required, logout_user

from portal.clock import utcnow
from portal.extensions import db, login_manager
from portal.models import Role, User


def passive(view: Callable) -> Callable:
    """Mark a view a page polls by itself: it does not count as activity, or an open
    tab would keep an idle staff session alive for ever."""
    view._portal_passive = True  # type: ignore[attr-defined]
    return view


def configure_login(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "accounts.sign_in"
    login_manager.login_message = "Sign in to continue."
    login_manager.session_protection = "strong"

    @login_manager.user_loader
    def load_user(user_id: str) -> User | None:
        return db.session.get(User, int(user_id))

    app.before_request(_end_idle_staff_sessions)


def _end_idle_staff_sessions() -> Any:
    if not current_user.is_authenticated or not current_user.is_staff:
        return None
    now = utcnow().timestamp()
    last = session.get("last_active")
    limit = current_app.config["STAFF_IDLE_TIMEOUT"].total_seconds()
    if last is not None and now - last > limit:
        logout_user()
        session.clear()
        flash("You were signed out after 30 minutes without activity.", "info")
        target = url_for("accounts.sign_in")
        if request.headers.get("HX-Request") == "true":
            response = current_app.response_class(status=204)
            response.headers["HX-Redirect"] = target
            return response
        return redirect(target)
    view = current_app.view_functions.get(request.endpoint or "")
    if not getattr(view, "_portal_passive", False):
        session["last_active"] = now
    return None


def roles_required(*roles: Role) -> Callable:
    """Only these roles may use the view; others get 403 (partners get 404)."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        @login_required
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            if current_user.role not in roles:
                abort(404 if current_user.is_partner_user else 403)
            return view(*args, **kwargs)

        return wrapped

    return decorator
