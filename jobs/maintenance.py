"""Database upkeep that nobody should have to remember."""

from __future__ import annotations

from flask import Flask

from portal.database import refresh_planner_statistics
from portal.extensions import db


def refresh_statistics() -> None:
    refresh_planner_statistics(db.engine)


def register(every, _app: Flask) -> None:
    every(refresh_statistics, seconds=6 * 3600)
