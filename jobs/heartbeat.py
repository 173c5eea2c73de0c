"""The jobs process says it is alive (portal/health.py reads it: /readyz, staff pages)."""

from __future__ import annotations

from flask import Flask

from portal.health import record_heartbeat


def register(every, app: Flask) -> None:
    every(record_heartbeat, seconds=app.config["JOBS_HEARTBEAT_SECONDS"])
