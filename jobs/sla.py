"""The SLA sweep (at-risk and breach tagging) and the no-referral-goes-dark check."""

from __future__ import annotations

from flask import Flask

from portal.sla.tasks import check_coverage, sweep


def sla_sweep() -> None:
    sweep()


def sla_coverage_check() -> None:
    check_coverage()


def register(every, app: Flask) -> None:
    every(sla_sweep, seconds=app.config["SLA_SWEEP_SECONDS"])
    every(sla_coverage_check, seconds=app.config["SLA_COVERAGE_SECONDS"])
