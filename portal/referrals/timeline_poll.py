"""A referral timeline's ETag, and the poll that finds nothing new, answered early.

An open referral page asks GET /referrals/<reference>/timeline every few seconds with
the ETag of what it shows, and nearly always nothing changed. Through Flask (request
ids, Flask-Login, CSRF, Babel, the headers) that 304 cost several times a bare Flask
hello-world. `TimelinePoll`, a WSGI middleware (inside ProxyFix, so the scheme is the
proxy's), answers it with one indexed statement instead: the session row named by the
cookie's token and its user, signed in by `session_state` (the rule the request loader
applies; a poll is not activity there either), joined with the referral as
`visible_referrals` lets that user see it, its version and the newest event the user
sees: services.timeline_state_statement, the view's own read. When the ETag made of them is
the one asked about, it answers 304 with the headers the view's 304 carries.

Anything else goes on to Flask untouched: no cookie, an ETag of another form, an ended
session, a referral this user may not see (never a 304 for another partner's), HEAD,
a database error. There the view redirects to sign-in, answers 404, or sends the
fragment and audits the view, as ever. Nothing is logged here: gunicorn's access line
takes the request id from the X-Request-ID header, as for any response.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from sqlalchemy import Select, bindparam, true
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.sansio.http import parse_cookie

from portal.accounts.sessions import MAX_TOKEN_LENGTH, SIGNED_IN, session_state, token_digest
from portal.clock import utcnow
from portal.models import Referral, Role, User, UserSession
from portal.referrals.references import REFERENCE_REGEX
from portal.referrals.services import (
    TIMELINE_AUDIENCES,
    timeline_etag,
    timeline_state_statement,
)
from portal.request_ids import HEADER as REQUEST_ID_HEADER
from portal.request_ids import request_id_for
from portal.security import security_headers

_TIMELINE_PATH = re.compile(rf"/referrals/({REFERENCE_REGEX})/timeline")


class _SessionUser:
    """The user a session row names, as `visible_referrals` reads a user: the joined
    row's columns, so the access rule is the same one, applied in SQL."""

    def __init__(self, partner: bool) -> None:
        self.is_partner_user = partner

    @property
    def partner_id(self) -> Any:
        return User.partner_id


def _poll_statement(partner: bool) -> Select:
    """`timeline_state_statement` for the user signed in by the bound `token_hash` at the
    bound `now`, when that user is of this audience (partner users, or staff)."""
    audience = User.role == Role.PARTNER if partner else User.role != Role.PARTNER
    now = bindparam("now", type_=UserSession.expires_at.type)
    return (
        timeline_state_statement(_SessionUser(partner))
        .join_from(UserSession, User, UserSession.user)
        .join_from(User, Referral, true())
        .where(
            UserSession.token_hash == bindparam("token_hash"),
            session_state(now) == SIGNED_IN,
            audience,
        )
    )


class TimelinePoll:
    """WSGI middleware: the timeline's "nothing new" 304 without Flask (module doc)."""

    def __init__(self, app: Flask, wsgi_app: Callable) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        self.statements = {partner: _poll_statement(partner) for partner in TIMELINE_AUDIENCES}

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        answered = self._not_modified(environ) if environ.get("HTTP_IF_NONE_MATCH") else None
        if answered is None:
            return self.wsgi_app(environ, start_response)
        start_response("304 NOT MODIFIED", answered)
        return []

    def _not_modified(self, environ: dict) -> list[tuple[str, str]] | None:
        """The 304's headers when nothing changed for this signed-in user, else None."""
        asked = environ["HTTP_IF_NONE_MATCH"]
        path = _TIMELINE_PATH.fullmatch(environ.get("PATH_INFO", ""))
        if environ.get("REQUEST_METHOD") != "GET" or path is None:
            return None
        reference = path.group(1)
        partner = asked.endswith('-partner"')
        if not asked.startswith(f'"{reference}-') or not (partner or asked.endswith('-staff"')):
            return None
        config = self.app.config
        token = parse_cookie(environ.get("HTTP_COOKIE")).get(config["AUTH_COOKIE_NAME"])
        if not token or len(token) > MAX_TOKEN_LENGTH:
            return None
        parameters = {"token_hash": token_digest(token), "now": utcnow(), "reference": reference}
        try:
            with self.app.extensions["portal.db.engine"].connect() as connection:
                row = connection.execute(self.statements[partner], parameters).first()
        except SQLAlchemyError:
            return None  # the view meets the same error, and reports it as it should
        if row is None or asked != timeline_etag(reference, row[1], row[2] or 0, partner=partner):
            return None
        return self._headers(environ, asked, config)

    @staticmethod
    def _headers(environ: dict, etag: str, config: Any) -> list[tuple[str, str]]:
        """The headers of the view's 304, as the portal's after-request hooks set them:
        portal/security.py, portal/request_ids.py, and Vary from Flask's session."""
        request_id = request_id_for(
            environ.get("HTTP_X_REQUEST_ID", ""), config["TRUSTED_PROXY_COUNT"]
        )
        secure = environ.get("wsgi.url_scheme") in ("https", "wss")
        return [
            ("ETag", etag),
            *security_headers(secure=secure),
            (REQUEST_ID_HEADER, request_id),
            ("Vary", "Cookie"),
        ]


def install_timeline_poll(app: Flask) -> None:
    """Answer unchanged timeline polls before Flask (call before ProxyFix wraps the app)."""
    app.wsgi_app = TimelinePoll(app, app.wsgi_app)
