"""Shared fixtures: a clean, migrated database per test, an app, clients and the desk.

The database is SQLite unless `--database-url` (or TEST_DATABASE_URL) names a
PostgreSQL database. Migrations run once per session; each test then gets its own
copy (SQLite) or emptied tables (PostgreSQL), so no test sees another's rows.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import shutil
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import pytest
from flask import Flask
from flask.testing import FlaskClient
from itsdangerous import URLSafeTimedSerializer
from sqlalchemy import create_engine, event, text

from portal import create_app
from portal.accounts.sessions import create_session_row
from portal.commands import upgrade_database
from portal.config import TestConfig
from portal.database import empty_postgresql
from portal.extensions import db
from portal.models import Base
from tests.fixtures.desk import Desk, build_desk, totp_code, user
from tests.fixtures.gunicorn import gunicorn  # noqa: F401 - a fixture for every test
from tests.fixtures.privacy import find_patient_data_in_messages


def pytest_sessionstart(session: pytest.Session) -> None:
    """Compile the translation catalogs, as scripts/translations.sh does for the portal:
    the app refuses to start with a catalog missing or stale."""
    from babel.messages.frontend import CommandLineInterface

    CommandLineInterface().run(["pybabel", "compile", "-d", "portal/translations"])


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--database-url",
        default=os.environ.get("TEST_DATABASE_URL"),
        help="PostgreSQL URL to test against (default: a SQLite file per test)",
    )


@dataclass(frozen=True)
class DatabaseTemplate:
    dialect: str
    location: str  # the migrated SQLite file, or the PostgreSQL URL


@pytest.fixture(scope="session")
def database_template(request, tmp_path_factory) -> DatabaseTemplate:
    url = request.config.getoption("--database-url")
    if not url or url.startswith("sqlite"):
        path = tmp_path_factory.mktemp("template") / "portal.db"
        _migrate(f"sqlite:///{path}")
        return DatabaseTemplate("sqlite", str(path))
    empty_postgresql(url)
    _migrate(url)
    return DatabaseTemplate("postgresql", url)


def _migrate(url: str) -> None:
    app = create_app(TestConfig, DATABASE_URL=url)
    with app.app_context():
        upgrade_database()
        db.engine.dispose()


@pytest.fixture
def database_url(database_template: DatabaseTemplate, tmp_path) -> str:
    if database_template.dialect == "sqlite":
        path = tmp_path / "portal.db"
        shutil.copyfile(database_template.location, path)
        return f"sqlite:///{path}"
    engine = create_engine(database_template.location)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    with engine.begin() as connection:
        connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    engine.dispose()
    return database_template.location


@pytest.fixture
def app(database_url: str) -> Iterator[Flask]:
    app = create_app(TestConfig, DATABASE_URL=database_url)
    yield app
    with app.app_context():
        db.session.remove()
        # Whatever the test did, no message it caused may name a patient's details.
        leaks = find_patient_data_in_messages()
        db.session.remove()
        db.engine.dispose()
    assert not leaks, leaks


@pytest.fixture
def desk(app: Flask) -> Desk:
    """Two partners, a user for every role, two service lines (one with required items)."""
    with app.app_context():
        return build_desk()


class PortalClient(FlaskClient):
    """A test client that signs in and sends the CSRF token like the browser does.

    The token is made the way Flask-WTF makes it: a random value in the session,
    signed with the app's secret key; the browser gets it from the page's hx-headers.
    """

    def sign_in(self, email: str, password: str = "correct horse battery") -> None:
        """Sign in through the pages: password, then the second factor where asked."""
        response = self.post(
            "/sign-in", data={"email": email, "password": password}, follow_redirects=False
        )
        assert response.status_code == 302, response.get_data(as_text=True)[:500]
        if response.headers["Location"].endswith("/sign-in/code"):
            with self.application.app_context():
                code = totp_code(email)
            response = self.post("/sign-in/code", data={"code": code})
            assert response.status_code == 302, response.get_data(as_text=True)[:500]

    def sign_in_directly(self, email: str) -> str:
        """Start a signed-in session for `email` without the sign-in pages (for tests of
        everything else: no password hashing, no one-time code to spend). Returns the
        cookie's token."""
        with self.application.app_context():
            token = create_session_row(
                user(email), authenticated=True, user_agent="pytest", address="127.0.0.1"
            )
            db.session.commit()
        self.set_cookie(self.application.config["AUTH_COOKIE_NAME"], token)
        return token

    def csrf_token(self) -> str:
        with self.session_transaction() as session:
            raw = session.setdefault("csrf_token", hashlib.sha1(os.urandom(64)).hexdigest())
        return URLSafeTimedSerializer(self.application.secret_key, salt="wtf-csrf-token").dumps(raw)

    def open(self, *args, **kwargs):
        method = kwargs.get("method", "GET")
        if method != "GET" and not kwargs.pop("without_csrf", False):
            headers = dict(kwargs.pop("headers", None) or {})
            headers.setdefault("X-CSRFToken", self.csrf_token())
            kwargs["headers"] = headers
        return super().open(*args, **kwargs)


@pytest.fixture
def client(app: Flask) -> PortalClient:
    app.test_client_class = PortalClient
    return app.test_client()


@pytest.fixture
def client_for(app: Flask):
    """A signed-in client for a desk user: `client_for(desk.intake)`."""

    def make(email: str) -> PortalClient:
        app.test_client_class = PortalClient
        client = app.test_client()
        client.sign_in_directly(email)
        return client

    return make


@pytest.fixture
def count_queries(app: Flask):
    """Count the SQL statements run inside the block: `with count_queries() as n: ...`."""

    class Counter:
        def __init__(self) -> None:
            self.count = 0

        def __enter__(self):
            with app.app_context():
                self.engine = db.engine
            event.listen(self.engine, "before_cursor_execute", self._count)
            return self

        def _count(self, *_args) -> None:
            self.count += 1

        def __exit__(self, *_exc) -> None:
            event.remove(self.engine, "before_cursor_execute", self._count)

    return Counter


class SmtpSink:
    """Collects every message the portal sends over SMTP (aiosmtpd on a free port).

    `hold_at = n` keeps the n-th delivery hanging (so a test can kill the sender in
    the middle of it) until `release` is set, then refuses it with a temporary error;
    `delay` slows every delivery down.
    """

    def __init__(self) -> None:
        self.messages: list = []
        self.attempts = 0
        self.hold_at: int | None = None
        self.hold_suffix = ""  # count only deliveries to recipients ending so
        self.holding = threading.Event()
        self.release = threading.Event()
        self.delay = 0.0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        from email import message_from_bytes, policy

        counted = all(r.endswith(self.hold_suffix) for r in envelope.rcpt_tos)
        self.attempts += counted
        if counted and self.attempts == self.hold_at:
            self.holding.set()
            while not self.release.is_set():
                await asyncio.sleep(0.02)
            return "451 4.3.0 Try again later"
        if self.delay:
            await asyncio.sleep(self.delay)
        message = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((envelope.rcpt_tos, message))
        return "250 Message accepted for delivery"

    def message_ids(self, recipient_suffix: str = "") -> list[str]:
        """Message-IDs received, optionally only those to recipients ending so."""
        return [
            message["Message-ID"]
            for recipients, message in self.messages
            if all(r.endswith(recipient_suffix) for r in recipients)
        ]


@contextmanager
def serving_smtp(app: Flask, sink):
    """Run aiosmtpd with `sink` as its handler on a free local port, the app sending to
    it, for as long as the block lasts."""
    from aiosmtpd.controller import Controller

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sink.port = port
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    app.config.update(
        MAIL_BACKEND="smtp", MAIL_HOST="127.0.0.1", MAIL_PORT=port, MAIL_USE_TLS=False
    )
    app.extensions.pop("portal.notifications.backend.email", None)
    try:
        yield sink
    finally:
        controller.stop()


@pytest.fixture
def smtp_sink(app):
    """A real SMTP server the app sends to, on a free local port."""
    with serving_smtp(app, SmtpSink()) as sink:
        yield sink
