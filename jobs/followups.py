"""Chasing: partners for missing information, patients for their next step and visit."""

from __future__ import annotations

from flask import Flask

from portal.patients.tasks import remind_appointments, remind_patients
from portal.referrals.tasks import chase_incomplete_referrals


def register(every, app: Flask) -> None:
    for job in (chase_incomplete_referrals, remind_patients, remind_appointments):
        every(job, seconds=app.config["FOLLOW_UP_SECONDS"])
