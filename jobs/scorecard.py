"""The weekly scorecard emails (each partner's own figures, and all partners' to partner
success), and keeping last week's and last month's scorecards stored."""

from __future__ import annotations

from flask import Flask

from portal.scorecard.report import store_closed_periods
from portal.scorecard.tasks import send_weekly_scorecards


def register(every, app: Flask) -> None:
    # Hourly: the job itself finds in the database which of last week's emails are due.
    every(send_weekly_scorecards, seconds=3600)
    # Hourly: computes only what a change made stale since (a few statements otherwise),
    # so the first person to open last week's or last month's scorecard reads it at once.
    every(store_closed_periods, seconds=3600)
