"""The single-runner lock for SQLite deployments.

SQLite has no row locks, so two jobs processes would both see the same due rows. The
first process takes an exclusive lock on a file beside the database; a second one
says so in its log and waits, idle, until the first stops (the OS drops the lock when
a process dies, however it dies). PostgreSQL needs no such lock: rows are claimed with
FOR UPDATE SKIP LOCKED and any number of processes can share the work.
"""

from __future__ import annotations

import fcntl
import logging
import os
import time
from pathlib import Path
from typing import IO

from flask import Flask
from sqlalchemy.engine import make_url

log = logging.getLogger("jobs")


def needs_single_runner(app: Flask) -> bool:
    return make_url(app.config["DATABASE_URL"]).get_backend_name() == "sqlite"


def lock_path(app: Flask) -> Path:
    if app.config.get("JOBS_LOCK_FILE"):
        return Path(app.config["JOBS_LOCK_FILE"])
    database = make_url(app.config["DATABASE_URL"]).database or "portal.db"
    return Path(database).with_name(Path(database).name + ".jobs.lock")


def wait_for_single_runner_lock(app: Flask, poll_seconds: float = 5.0) -> IO:
    """Block until this process is the only jobs runner; return the held lock file."""
    path = lock_path(app)
    handle = path.open("a+")
    announced = False
    while True:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if not announced:
                log.warning(
                    "another jobs process holds %s (SQLite allows one runner); "
                    "staying idle until it stops",
                    path,
                )
                announced = True
            time.sleep(poll_seconds)
            continue
        handle.seek(0)
        handle.truncate()
        handle.write(f"{os.getpid()}\n")
        handle.flush()
        if announced:
            log.info("the other jobs process stopped; this one takes over")
        return handle
