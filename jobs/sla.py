"""The SLA sweep: at-risk and breach tagging, and the no-referral-goes-dark check."""

from __future__ import annotations

from flask import Flask

from portal.sla.tasks import sweep


def sla_sweep() -> None:
    sweep()


def register(every, app: Flask) -> None:
    every(sla_sweep, seconds=app.config["SLA_SWEEP_SECONDS"])
