"""Chasing: partners for missing information, patients for their next step and visit."""

from __future__ import annotations

from flask import Flask

from portal.patients.tasks import remind_appointments, remind_patients
from portal.referrals.tasks import chase_incomplete_referrals


def register(scheduler, app: Flask, wrap) -> None:
    for job in (chase_incomplete_referrals, remind_patients, remind_appointments):
        scheduler.add_job(
            wrap(app, job),
            "interval",
            seconds=app.config["FOLLOW_UP_SECONDS"],
            id=job.__name__,
            next_run_time=app.config["JOBS_START_AT"](),
        )
