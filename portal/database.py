"""The SQLAlchemy engine and the request-scoped session.

SQLite is the embedded default (a file in the instance folder, WAL, foreign keys on);
PostgreSQL is reached through DATABASE_URL. The schema itself only ever comes from
Alembic (`flask --app wsgi db upgrade`), never from `create_all` at start-up.
"""

from __future__ import annotations

import os
from pathlib import Path

from flask import Flask, current_app
from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, scoped_session


def normalise_database_url(url: str) -> str:
    """Use the psycopg 3 driver for plain `postgresql://` URLs."""
    parsed = make_url(url)
    if parsed.drivername in {"postgres", "postgresql"}:
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def default_sqlite_url(instance_path: str) -> str:
    Path(instance_path).mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{os.path.join(instance_path, 'portal.db')}"


def build_engine(url: str) -> Engine:
    """An engine for `url`, with SQLite tuned for a small web server plus a jobs process.

    `hide_parameters`: a failed statement's message (which reaches the log with its
    traceback) never carries its values: they are patients' names and dates of birth.
    """
    url = normalise_database_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30}, hide_parameters=True)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # pragma: no cover - trivial
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    # JIT compilation pays off for hour-long analytics, not for a web page's queries: on
    # the scorecard it spent 0.7 s compiling a 1 s query.
    return create_engine(
        url,
        hide_parameters=True,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=10,
        # A database host that does not answer fails a page (and /readyz) in seconds
        # rather than the kernel's minutes.
        connect_args={"options": "-c jit=off", "connect_timeout": 5},
    )


def refresh_planner_statistics(engine: Engine) -> None:
    """Keep SQLite's query planner statistics current.

    SQLite plans from `sqlite_stat1`, which only ANALYZE writes: a table analysed while
    nearly empty keeps being planned as empty (a join that should use an index scans
    instead). `analysis_limit` samples each index, so this takes milliseconds at any
    size. PostgreSQL's autovacuum does the same job by itself.
    """
    if engine.dialect.name != "sqlite":
        return
    with engine.begin() as connection:
        connection.exec_driver_sql("PRAGMA analysis_limit=1000")
        connection.exec_driver_sql("ANALYZE")


def empty_postgresql(url: str) -> None:
    """Drop everything in a PostgreSQL database's public schema (tests and benchmarks
    start from an empty database they own; never pointed at a real desk)."""
    engine = create_engine(normalise_database_url(url))
    try:
        with engine.begin() as connection:
            connection.execute(text("DROP SCHEMA public CASCADE"))
            connection.execute(text("CREATE SCHEMA public"))
    finally:
        engine.dispose()


def upsert_insert(session: Session, model: type) -> postgresql.Insert | sqlite.Insert:
    """An INSERT of `model` that can say ON CONFLICT DO UPDATE / DO NOTHING, on the
    session's database (both spell it the same way)."""
    dialect = session.get_bind().dialect.name
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(model)


def commit_keeping_loaded() -> None:
    """Commit, keeping every loaded object as it is (no reload on next access).

    For a request that only added rows (an audit entry, a seen marker) and goes on to
    render what it loaded: after a plain commit, reading the user or the referral again
    would cost a statement each for values that cannot have changed.
    """
    from portal.extensions import db

    session = db.session()
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = True


class Database:
    """Holds the session registry; the engine lives on the app it was set up with."""

    def __init__(self) -> None:
        self.session = scoped_session(self._new_session)

    def init_app(self, app: Flask) -> None:
        url = app.config.get("DATABASE_URL") or default_sqlite_url(app.instance_path)
        app.config["DATABASE_URL"] = normalise_database_url(url)
        app.extensions["portal.db.engine"] = build_engine(app.config["DATABASE_URL"])
        app.teardown_appcontext(self._remove_session)

    @property
    def engine(self) -> Engine:
        return current_app.extensions["portal.db.engine"]

    def _new_session(self) -> Session:
        return Session(bind=self.engine)

    def _remove_session(self, _exc: BaseException | None) -> None:
        self.session.remove()
