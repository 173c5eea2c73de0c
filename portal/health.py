"""Is it alive? Probes for a load balancer or orchestrator, and the jobs heartbeat.

- `/healthz`: the web process answers (liveness). Touches nothing else.
- `/readyz`: the database answers, its schema is the code's head, and the jobs process
  wrote its heartbeat within JOBS_STALE_MINUTES (readiness). 200 when every check is ok,
  503 otherwise; the body says ok or fail per check and nothing more.

The jobs process writes the heartbeat every JOBS_HEARTBEAT_SECONDS (jobs/heartbeat.py).
Staff pages show a red banner when it is stale, and admins see when it last ran: if the
jobs process dies, reminders, SLA tags and messages stop, and somebody must notice.
The same statement reads how the outbox fares: staff are told when a message has been
failing for OUTBOX_LATE_MINUTES (the mail server is down, say), and admins on every
page when messages were dead-lettered, not only on the Undelivered page. Neither fails
readiness: taking the web out of service would not bring the mail server back.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache

from alembic.script import ScriptDirectory
from flask import Blueprint, Flask, current_app, jsonify
from sqlalchemy import func, select, text
from sqlalchemy.exc import SQLAlchemyError

from portal.clock import utcnow
from portal.extensions import db
from portal.models import JobState, MessageStatus, OutboxMessage

HEARTBEAT = "jobs_heartbeat"

bp = Blueprint("health", __name__)


def record_heartbeat() -> None:
    """The jobs process is alive: say so, with which process it is."""
    state = db.session.get(JobState, HEARTBEAT) or JobState(name=HEARTBEAT)
    state.value = {"host": socket.gethostname(), "pid": os.getpid()}
    state.updated_at = utcnow()
    db.session.add(state)
    db.session.commit()


@dataclass(frozen=True)
class JobsStatus:
    last_beat: datetime | None
    stale: bool
    dead_messages: int = 0  # dead-lettered, waiting for an admin
    failing_since: datetime | None = None  # when the oldest message still failing was written

    @property
    def stopped_for(self) -> timedelta | None:
        return None if self.last_beat is None else utcnow() - self.last_beat

    @property
    def messages_late(self) -> bool:
        limit = timedelta(minutes=current_app.config["OUTBOX_LATE_MINUTES"])
        return self.failing_since is not None and utcnow() - self.failing_since >= limit


def jobs_status() -> JobsStatus:
    """When the jobs process last wrote its heartbeat, whether that is too long ago, and
    how the outbox fares. Kept for JOBS_STATUS_CACHE_SECONDS per web process: every staff
    page asks."""
    config = current_app.config
    cache = current_app.extensions.setdefault("portal.jobs_status", {})
    ttl = config["JOBS_STATUS_CACHE_SECONDS"]
    if not (ttl and cache.get("until", 0) > time.monotonic()):
        cache.update(row=_beat_and_outbox(), until=time.monotonic() + ttl)
    last_beat, dead_messages, failing_since = cache["row"]
    return JobsStatus(last_beat, not _fresh(last_beat), dead_messages or 0, failing_since)


def _beat_and_outbox() -> tuple[datetime | None, int, datetime | None]:
    """The heartbeat, the dead letters and the oldest failing message, in one statement."""
    heartbeat = select(JobState.updated_at).where(JobState.name == HEARTBEAT)
    dead = select(func.count(OutboxMessage.id)).where(
        OutboxMessage.status == MessageStatus.DEAD
    )
    # Waiting because the provider could not be reached, not because it refused one
    # address: a single refusal is the admin's (Undelivered), not every desk's alarm.
    failing = select(func.min(OutboxMessage.created_at)).where(
        OutboxMessage.status == MessageStatus.PENDING, OutboxMessage.unreachable_tries > 0
    )
    row = db.session.execute(
        select(heartbeat.scalar_subquery(), dead.scalar_subquery(), failing.scalar_subquery())
    ).one()
    return row[0], row[1], row[2]


def _last_beat() -> datetime | None:
    return db.session.scalar(select(JobState.updated_at).where(JobState.name == HEARTBEAT))


def _fresh(last_beat: datetime | None) -> bool:
    limit = timedelta(minutes=current_app.config["JOBS_STALE_MINUTES"])
    return last_beat is not None and utcnow() - last_beat <= limit


@lru_cache(maxsize=1)
def code_head() -> str:
    from portal.commands import alembic_config

    return ScriptDirectory.from_config(alembic_config()).get_current_head()


def _readiness() -> dict[str, bool]:
    checks = {"database": False, "schema": False, "jobs": False}
    try:
        db.session.execute(text("SELECT 1"))
        checks["database"] = True
        revision = db.session.execute(text("SELECT version_num FROM alembic_version")).scalar()
        checks["schema"] = revision == code_head()
        checks["jobs"] = _fresh(_last_beat())
    except SQLAlchemyError:
        db.session.rollback()
    return checks


@bp.get("/healthz")
def healthz():
    """Liveness: the process answers."""
    return _no_store(jsonify(status="ok"))


@bp.get("/readyz")
def readyz():
    """Readiness: database, schema and jobs heartbeat, ok or fail each."""
    checks = _readiness()
    ready = all(checks.values())
    body = {
        "status": "ok" if ready else "fail",
        "checks": {name: "ok" if ok else "fail" for name, ok in checks.items()},
    }
    return _no_store(jsonify(body)), 200 if ready else 503


def _no_store(response):
    response.headers["Cache-Control"] = "no-store"
    return response


def install_health(app: Flask) -> None:
    app.register_blueprint(bp)

    @app.context_processor
    def jobs_status_for_templates():
        # A function, so only the staff pages that show it ask the database.
        return {"jobs_status": jobs_status}
