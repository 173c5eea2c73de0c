"""Outbox delivery: send what is due, retry failures with backoff."""

from __future__ import annotations

from flask import Flask

from portal.notifications.delivery import deliver_due_messages


def register(scheduler, app: Flask, wrap) -> None:
    scheduler.add_job(
        wrap(app, deliver_due_messages),
        "interval",
        seconds=app.config["OUTBOX_DELIVERY_SECONDS"],
        id="deliver_outbox",
        next_run_time=app.config["JOBS_START_AT"](),
    )
