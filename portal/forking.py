"""The portal built once in gunicorn's master, and copied into each worker it forks.

gunicorn.conf.py preloads the app: every worker (at start, and each one that
max_requests replaces) begins as a copy of the master's, so a new worker costs a fork
instead of importing and building the portal again (about 2 s of CPU each time).

Building the app opens no database connection (the engine connects on first use, and
tests/integration/test_forking.py checks it), and the master never serves a request;
`after_fork` drops the copied pool all the same, so that no connection can ever be
shared by two processes, as SQLAlchemy's guide on pools and multiprocessing asks.
"""

from __future__ import annotations

from flask import Flask

ENGINE = "portal.db.engine"


def is_portal(app: object) -> bool:
    """Whether gunicorn loaded the portal (the same gunicorn.conf.py serves the bare app
    of scripts/bench_bare_app.py)."""
    return isinstance(app, Flask) and ENGINE in app.extensions


def before_forking(app: Flask) -> None:
    """In the master: compile every template once, so no worker compiles them again."""
    for name in app.jinja_env.list_templates():
        app.jinja_env.get_template(name)


def after_fork(app: Flask) -> None:
    """In a new worker: a pool of its own (the master's copy, empty, is dropped without
    touching any connection it might hold)."""
    app.extensions[ENGINE].dispose(close=False)
