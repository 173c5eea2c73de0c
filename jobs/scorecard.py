"""The weekly scorecard email to partner success."""

from __future__ import annotations

from flask import Flask

from portal.scorecard.tasks import send_weekly_summary


def register(scheduler, app: Flask, wrap) -> None:
    # Hourly: the job itself decides from the database whether last week has gone out.
    scheduler.add_job(
        wrap(app, send_weekly_summary),
        "interval",
        hours=1,
        id="send_weekly_summary",
        next_run_time=app.config["JOBS_START_AT"](),
    )
