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
the one asked about, it answers 304 with the headers the view's 304 carries. That read is
compiled once and run on a pooled DBAPI cursor (`PreparedRead`): through SQLAlchemy's
execute it cost some 95 µs of Python around 10 µs of SQLite, most of the poll.

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
from sqlalchemy import Engine, Select, bindparam, true
from werkzeug.sansio.http import parse_cookie

from portal.accounts.sessions import MAX_TOKEN_LENGTH, SIGNED_IN, session_state, token_digest
from portal.clock import utcnow
from portal.models import Referral, Role, User, UserSession
from portal.referrals.references import REFERENCE_REGEX
from portal.referrals.services import (
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


class PreparedRead:
    """A SELECT compiled once for an engine's dialect, run straight on a pooled DBAPI
    cursor: no statement cache lookup, execution context or result object per call.

    Values are given by bound name and go through their types' bind processors, as
    SQLAlchemy's execute would send them; the statement's own constants are processed
    once, here. The engine's before_cursor_execute listeners still hear each run (the
    tests count statements with one), without a connection or an execution context,
    and cannot rewrite it; after_cursor_execute is not fired.

    Plain bound values only: a statement with expanding (IN) or literal-execute
    parameters, or names the dialect must escape, is refused when it is prepared."""

    def __init__(self, statement: Select, engine: Engine) -> None:
        dialect = engine.dialect
        compiled = statement.compile(dialect=dialect)
        if (
            compiled.post_compile_params
            or compiled.literal_execute_params
            or compiled.escaped_bind_names
        ):
            raise ValueError("PreparedRead takes plain bound values only")
        self.engine = engine
        self.dialect = dialect
        self.sql = compiled.string
        self.positions = compiled.positiontup  # None with a named paramstyle (psycopg)
        self.processors = {
            name: bind.type.dialect_impl(dialect).bind_processor(dialect)
            for name, bind in compiled.binds.items()
        }
        self.constants = {
            name: self._processed(name, bind.effective_value)
            for name, bind in compiled.binds.items()
            if not bind.required
        }

    def _processed(self, name: str, value: Any) -> Any:
        processor = self.processors.get(name)
        return value if processor is None else processor(value)

    def first(self, **values: Any) -> tuple | None:
        """The first row for these bound values. A connection the database dropped is
        invalidated, as SQLAlchemy's own execute would, not handed back to the pool."""
        named = {**self.constants}
        for name, value in values.items():
            named[name] = self._processed(name, value)
        parameters = named if self.positions is None else tuple(named[n] for n in self.positions)
        connection = self.engine.raw_connection()
        try:
            cursor = connection.cursor()
            try:
                listeners = self.engine.dispatch.before_cursor_execute
                if listeners:
                    listeners(None, cursor, self.sql, parameters, None, False)
                try:
                    cursor.execute(self.sql, parameters)
                    return cursor.fetchone()
                except self.dialect.loaded_dbapi.Error as error:
                    if self.dialect.is_disconnect(error, connection.dbapi_connection, cursor):
                        connection.invalidate(error)
                    raise
            finally:
                cursor.close()
        finally:
            connection.close()  # back to the pool, its transaction rolled back


class TimelinePoll:
    """WSGI middleware: the timeline's "nothing new" 304 without Flask (module doc)."""

    def __init__(self, app: Flask, wsgi_app: Callable) -> None:
        self.app = app
        self.wsgi_app = wsgi_app
        # Compiled at the first poll, for the app's engine (set up after this middleware).
        self.reads: dict[bool, PreparedRead] = {}

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
        engine = self.app.extensions["portal.db.engine"]
        read = self.reads.get(partner)
        if read is None or read.engine is not engine:
            read = self.reads[partner] = PreparedRead(_poll_statement(partner), engine)
        try:
            row = read.first(token_hash=token_digest(token), now=utcnow(), reference=reference)
        except Exception:  # noqa: BLE001 - any failure here: Flask answers instead
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
