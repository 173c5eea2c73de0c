"""The weekly summary for partner success: last week's figures and a link, once."""

from __future__ import annotations

import logging

from flask import current_app

from portal.clock import utcnow
from portal.extensions import db
from portal.models import JobState
from portal.notifications.outbox import portal_url, queue_email
from portal.scorecard.periods import last_complete_week
from portal.scorecard.report import display, one_table
from portal.scorecard.tables import SUMMARY

log = logging.getLogger(__name__)


def send_weekly_summary() -> bool:
    """Email last week's scorecard if it has not gone yet (safe to run every hour)."""
    week = last_complete_week()
    state = db.session.get(JobState, "weekly_summary")
    if state is not None and state.value.get("week") == week.first_day.isoformat():
        return False
    if state is None:
        state = JobState(name="weekly_summary", value={}, updated_at=utcnow())
        db.session.add(state)
    queue_email(
        recipient=current_app.config["PARTNER_SUCCESS_EMAIL"],
        template="weekly_summary",
        period=week.label,
        rows=[
            (column.label, display(value, column))
            for column, value in one_table(SUMMARY, week, None).figures()
        ],
        link=portal_url("scorecard.scorecard", **week.arguments),
    )
    state.value = {"week": week.first_day.isoformat()}
    state.updated_at = utcnow()
    db.session.commit()
    log.info("weekly summary for %s queued", week.first_day)
    return True
