"""The SLA sweep: at-risk and breach tagging, and the no-referral-goes-dark check."""

from __future__ import annotations

from flask import Flask

from portal.sla.tasks import sweep


def sla_sweep() -> None:
    sweep()


def register(scheduler, app: Flask, wrap) -> None:
    scheduler.add_job(
        wrap(app, sla_sweep),
        "interval",
        seconds=app.config["SLA_SWEEP_SECONDS"],
        id="sla_sweep",
        next_run_time=app.config["JOBS_START_AT"](),
    )
