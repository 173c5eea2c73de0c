"""The jobs process: one APScheduler scheduler, outside the web workers.

Run it once per deployment (`python -m jobs`). APScheduler 3 cannot share a job store
between processes, so every job works out what is due from database state instead of
from the scheduler's memory: a process that was down catches up when it returns.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Callable

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.blocking import BlockingScheduler
from flask import Flask

from jobs import backups, followups, heartbeat, maintenance, outbox, scorecard, sla
from jobs.locking import needs_single_runner, wait_for_single_runner_lock
from portal import create_app
from portal.logging_config import configure_logging

log = logging.getLogger("jobs")

# Each job family registers its jobs here, through `every` (see build_scheduler).
JOB_FAMILIES = (heartbeat, outbox, sla, followups, scorecard, maintenance, backups)


def in_app_context(app: Flask, job: Callable[[], object]) -> Callable[[], None]:
    """Run `job` inside an app context, logging (never raising) what goes wrong."""

    def run() -> None:
        with app.app_context():
            try:
                job()
            except Exception:
                log.exception("job %s failed", job.__name__)

    run.__name__ = run.__qualname__ = job.__name__
    return run


def build_scheduler(app: Flask) -> BlockingScheduler:
    # One worker thread: jobs run one after another, so they never race each other
    # (each still handles its rows one transaction at a time).
    # A backup runs on a thread of its own: a long dump must not hold up delivery or the
    # heartbeat (staff would see the red banner every night).
    scheduler = BlockingScheduler(
        executors={
            "default": ThreadPoolExecutor(max_workers=1),
            "long": ThreadPoolExecutor(max_workers=1),
        },
        timezone="UTC",
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
    )

    def every(
        job: Callable[[], object],
        *,
        seconds: float,
        job_id: str | None = None,
        long: bool = False,
    ) -> None:
        """Run `job` every `seconds`, first as soon as the process starts; a `long` job
        on its own thread, beside the others."""
        scheduler.add_job(
            in_app_context(app, job),
            "interval",
            seconds=seconds,
            id=job_id or job.__name__,
            next_run_time=app.config["JOBS_START_AT"](),
            executor="long" if long else "default",
        )

    for family in JOB_FAMILIES:
        family.register(every, app)
    return scheduler


def main() -> None:
    app = create_app()
    # The web's format; our own lines (ids and counts, never patient data) at LOG_LEVEL,
    # APScheduler's only when something is wrong.
    configure_logging(app, process="jobs")
    lock = wait_for_single_runner_lock(app) if needs_single_runner(app) else None
    scheduler = build_scheduler(app)
    # The handler runs on the main thread, which may be holding the scheduler's lock
    # at that instant (shutdown() from here could wait for itself): stop from a thread.
    signal.signal(
        signal.SIGTERM,
        lambda *_: threading.Thread(target=scheduler.shutdown, kwargs={"wait": False}).start(),
    )
    log.info("jobs process started with %d jobs", len(scheduler.get_jobs()))
    with contextlib.suppress(KeyboardInterrupt, SystemExit):
        scheduler.start()
    log.info("jobs process stopped")
    if lock is not None:
        lock.close()
