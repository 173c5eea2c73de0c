"""Server-side sessions, Flask-Login wiring and role checks.

Signing in creates a `user_session` row; the `portal_session` cookie carries a random
token whose SHA-256 names the row, and nothing else. Every request finds its row in
one indexed statement (with the user and their partner joined in), and the rules are
read from the row, never from the cookie: idle time, an absolute lifetime, whether the
second factor was given. Deleting the row (sign-out, password change, disable, an
admin's "end session") ends the session at once, wherever the cookie was copied to.

Flask-Login still provides `current_user` and `login_required`; its own session
storage, "remember me" cookie and "strong" protection are not used (the latter trusted
X-Forwarded-For as the client sent it; client addresses here come from
`request.remote_addr`, which ProxyFix sets only behind TRUSTED_PROXY_COUNT proxies).
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache, wraps
from typing import Any

from flask import (
    Flask,
    Request,
    Response,
    abort,
    current_app,
    flash,
    g,
    redirect,
    request,
    url_for,
)
from flask_babel import gettext
from flask_login import current_user, login_required
from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    bindparam,
    case,
    delete,
    not_,
    select,
    update,
)
from sqlalchemy.orm import contains_eager
from sqlalchemy.orm.attributes import set_committed_value

from portal.auditing import record_audit
from portal.clock import utcnow
from portal.extensions import db, login_manager
from portal.models import Role, User, UserSession
from portal.text import printable


def passive(view: Callable) -> Callable:
    """Mark a view a page polls by itself: it does not count as activity, or an open
    tab would keep an idle session alive for ever."""
    view._portal_passive = True  # type: ignore[attr-defined]
    return view


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def idle_timeout(user: User) -> timedelta:
    config = current_app.config
    return config["STAFF_IDLE_TIMEOUT"] if user.is_staff else config["PARTNER_IDLE_TIMEOUT"]


def client_address() -> str:
    """The client's address: the socket's, or the proxy's forwarded one when
    TRUSTED_PROXY_COUNT says how many proxies to believe (ProxyFix sets remote_addr)."""
    return (request.remote_addr or "")[:64]


# --- Loading the session of a request ------------------------------------------------


def configure_login(app: Flask) -> None:
    login_manager.init_app(app)
    login_manager.login_view = "accounts.sign_in"
    login_manager.session_protection = None  # the row is the session; see the module doc
    login_manager.request_loader(_user_from_session_cookie)
    login_manager.unauthorized_handler(_send_to_sign_in)
    app.after_request(_write_session_cookie)


@dataclass(frozen=True)
class SessionEnded:
    """Why a request's session cookie no longer signs anyone in."""

    reason: str  # "idle", "expired" or "ended"
    idle_minutes: int = 0


# A session cookie longer than this is not one of ours: forgotten without a lookup.
MAX_TOKEN_LENGTH = 100
SIGNED_IN = "signed_in"


def session_state(now: datetime | BindParameter) -> ColumnElement[str]:
    """What a session row, joined with its user, says at `now`: SIGNED_IN; "pending"
    (the second factor is awaited); or why it ended: "ended" (the user is disabled or
    has no password), "expired" (the absolute lifetime) or "idle".

    The one statement of the rule, in SQL: the request loader reads it with the row, and
    the timeline's fast 304 (portal/referrals/timeline_poll.py) asks for SIGNED_IN."""
    return case(
        (not_(User.is_active), "ended"),
        # Signed in with a password that has changed since (the check raced the change).
        (UserSession.credential_version != User.credential_version, "ended"),
        (UserSession.expires_at <= now, "expired"),
        (UserSession.idle_expires_at <= now, "idle"),
        (UserSession.authenticated.is_(False), "pending"),
        else_=SIGNED_IN,
    )


@cache
def _session_of_token() -> Select:
    """The session named by the bound `token_hash`, its user and their partner, and its
    `session_state` at the bound `now`: built once, run by every request."""
    return (
        select(UserSession, session_state(bindparam("now", type_=UserSession.expires_at.type)))
        .join(UserSession.user)
        .options(contains_eager(UserSession.user).joinedload(User.partner))
        .where(UserSession.token_hash == bindparam("token_hash"))
    )


def _user_from_session_cookie(req: Request) -> User | None:
    token = req.cookies.get(current_app.config["AUTH_COOKIE_NAME"])
    if not token:
        return None
    if len(token) > MAX_TOKEN_LENGTH:
        g.session_ended = SessionEnded("ended")
        return None
    now = utcnow()
    found = db.session.execute(
        _session_of_token(), {"token_hash": token_digest(token), "now": now}
    ).first()
    row, state = found or (None, "ended")
    if state == "ended":
        g.session_ended = SessionEnded("ended")
        return None
    if state in ("expired", "idle"):
        minutes = int(idle_timeout(row.user).total_seconds() // 60)
        g.session_ended = SessionEnded(state, idle_minutes=minutes)
        return None
    if state == "pending":
        g.pending_session = row  # the second-factor pages pick it up
        return None
    g.user_session = row
    view = current_app.view_functions.get(req.endpoint or "")
    if not getattr(view, "_portal_passive", False):
        _touch(row, now)
    return row.user


def _touch(row: UserSession, now: datetime) -> None:
    """Record activity, at most once per SESSION_TOUCH_INTERVAL.

    Written on a connection of its own so it lands whether or not the page itself
    commits, and without expiring what the request has loaded."""
    if now - row.last_seen_at < current_app.config["SESSION_TOUCH_INTERVAL"]:
        return
    idle_expires_at = min(now + idle_timeout(row.user), row.expires_at)
    with db.engine.begin() as connection:
        connection.execute(
            update(UserSession)
            .where(UserSession.id == row.id)
            .values(last_seen_at=now, idle_expires_at=idle_expires_at)
        )
    set_committed_value(row, "last_seen_at", now)
    set_committed_value(row, "idle_expires_at", idle_expires_at)


def current_session() -> UserSession | None:
    """The signed-in session of this request, if any."""
    current_user._get_current_object()  # runs the loader once
    return g.get("user_session")


def pending_session() -> UserSession | None:
    """A session whose password was right but whose second factor is still awaited."""
    current_user._get_current_object()
    return g.get("pending_session")


def _send_to_sign_in() -> Response:
    ended = g.get("session_ended")
    if ended is not None and ended.reason == "idle":
        flash(
            gettext(
                "You were signed out after %(minutes)s minutes without activity.",
                minutes=ended.idle_minutes,
            ),
            "info",
        )
    elif ended is not None and ended.reason == "expired":
        flash(gettext("Your session has ended. Sign in again to continue."), "info")
    else:
        flash(gettext("Sign in to continue."), "info")
    # The whole path with its query (a period, a filter, a score from an email), so the
    # page comes back as asked after sign-in.
    back = request.full_path.rstrip("?") if request.method == "GET" else None
    target = url_for("accounts.sign_in", next=back)
    if request.headers.get("HX-Request") == "true":
        response = current_app.response_class(status=204)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target)


def _write_session_cookie(response: Response) -> Response:
    config = current_app.config
    name = config["AUTH_COOKIE_NAME"]
    token = g.get("new_session_token")
    if token is not None:
        response.set_cookie(
            name,
            token,
            httponly=True,
            secure=config["SESSION_COOKIE_SECURE"],
            samesite="Lax",
            path="/",
        )
        response.vary.add("Cookie")
    elif g.get("session_ended") is not None or g.get("forget_session_cookie"):
        response.delete_cookie(name, path="/", httponly=True, samesite="Lax")
    return response


# --- Starting and ending sessions ----------------------------------------------------


def create_session_row(
    user: User,
    *,
    authenticated: bool,
    user_agent: str = "",
    address: str = "",
    credential_version: int | None = None,
) -> str:
    """Add a session row for `user` to the transaction; return the cookie's token.
    `credential_version`: the one the password was checked under (default: `user`'s as
    loaded, which is the row whose hash the sign-in checked)."""
    config = current_app.config
    token = secrets.token_urlsafe(32)
    now = utcnow()
    lifetime = (
        config["SESSION_ABSOLUTE_LIFETIME"]
        if authenticated
        else config["SECOND_FACTOR_PENDING_LIFETIME"]
    )
    expires_at = now + lifetime
    db.session.add(
        UserSession(
            token_hash=token_digest(token),
            user_id=user.id,
            authenticated=authenticated,
            created_at=now,
            last_seen_at=now,
            expires_at=expires_at,
            idle_expires_at=min(now + idle_timeout(user), expires_at),
            user_agent=printable(user_agent or request.user_agent.string, max_length=255),
            address=address or client_address(),
            credential_version=(
                user.credential_version if credential_version is None else credential_version
            ),
        )
    )
    return token


def start_session(user: User, *, authenticated: bool) -> None:
    """Sign this browser in as `user` (fully, or up to the second factor).

    Any session the browser had is ended first, so a token planted before sign-in
    never becomes a signed-in one (session fixation)."""
    _end_browser_session()
    g.new_session_token = create_session_row(user, authenticated=authenticated)
    if authenticated:
        user.last_sign_in_at = utcnow()


class PendingSessionGone(Exception):
    """The half-signed-in session ended meanwhile (an admin reset or disable)."""


def complete_second_factor(row: UserSession) -> None:
    """The second factor was given: the pending session becomes a signed-in one, under a
    new token and with the full lifetime. The pending row is deleted conditionally: if
    it went meanwhile, no signed-in session is made from it."""
    user = db.session.get(User, row.user_id)
    gone = db.session.execute(
        delete(UserSession).where(UserSession.id == row.id, UserSession.authenticated.is_(False))
    ).rowcount
    if gone != 1 or not user.is_active:
        raise PendingSessionGone()
    g.pop("pending_session", None)
    g.new_session_token = create_session_row(
        user, authenticated=True, credential_version=row.credential_version
    )
    user.last_sign_in_at = utcnow()


def _end_browser_session() -> None:
    token = request.cookies.get(current_app.config["AUTH_COOKIE_NAME"])
    if token:
        db.session.execute(delete(UserSession).where(UserSession.token_hash == token_digest(token)))


def sign_out_this_browser(user: User) -> None:
    """End the session of the current request."""
    row = current_session() or pending_session()
    if row is not None:
        end_session(row, by=user, reason="signed_out")
    g.forget_session_cookie = True


def end_session(row: UserSession, *, by: User | None, reason: str) -> None:
    """Delete one session (audited with who ended it and why)."""
    record_audit(
        "session.ended",
        actor=by,
        target_type="user",
        target_id=row.user_id,
        session_id=row.id,
        reason=reason,
    )
    db.session.execute(delete(UserSession).where(UserSession.id == row.id))


def end_all_sessions(
    user: User, *, by: User | None, reason: str, keep: UserSession | None = None
) -> int:
    """Delete every session of `user` (but `keep`), at once; return how many ended."""
    statement = delete(UserSession).where(UserSession.user_id == user.id)
    if keep is not None:
        statement = statement.where(UserSession.id != keep.id)
    ended = db.session.execute(statement).rowcount or 0
    record_audit(
        "session.ended_all",
        actor=by,
        target_type="user",
        target_id=user.id,
        sessions=ended,
        reason=reason,
        kept_current=keep is not None,
    )
    return ended


def active_sessions(user_id: int) -> list[UserSession]:
    """A user's signed-in sessions that have not expired, most recently used first."""
    now = utcnow()
    return list(
        db.session.scalars(
            select(UserSession)
            .where(
                UserSession.user_id == user_id,
                UserSession.authenticated.is_(True),
                UserSession.expires_at > now,
                UserSession.idle_expires_at > now,
            )
            .order_by(UserSession.last_seen_at.desc(), UserSession.id.desc())
        )
    )


def purge_expired_sessions(batch_size: int = 500) -> int:
    """Delete sessions past their idle or absolute end (the jobs process runs this),
    auditing each as ended by the system. Returns how many were deleted."""
    now = utcnow()
    rows = db.session.scalars(
        select(UserSession)
        .where((UserSession.expires_at <= now) | (UserSession.idle_expires_at <= now))
        .limit(batch_size)
    ).all()
    for row in rows:
        if row.authenticated:
            record_audit(
                "session.expired",
                actor=None,
                target_type="user",
                target_id=row.user_id,
                session_id=row.id,
                reason="absolute" if row.expires_at <= now else "idle",
            )
    if rows:
        db.session.execute(delete(UserSession).where(UserSession.id.in_([r.id for r in rows])))
    return len(rows)


# --- Who may use a view --------------------------------------------------------------


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
