"""The weekly scorecard email to partner success."""

from __future__ import annotations

from flask import Flask

from portal.scorecard.tasks import send_weekly_summary


def register(every, app: Flask) -> None:
    # Hourly: the job itself decides from the database whether last week has gone out.
    every(send_weekly_summary, seconds=3600)
