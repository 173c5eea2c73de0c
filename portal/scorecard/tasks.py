"""The weekly scorecard emails: each referring office gets its own figures for last
week, partner success gets all partners' figures. Each goes once per week.

Every message's outbox key is made from the week and the recipient
(`weekly_message_key`), and outbox keys are unique, so no run can write a message a
second time: it finds the key taken and moves on. Each message is committed on its own,
so a run that stops midway keeps what it wrote and the next run writes the rest. The
JobState row only spares the hourly job the work once the week is done.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import exists, select
from sqlalchemy.exc import IntegrityError

from portal.clock import utcnow
from portal.exports import Column
from portal.extensions import db
from portal.formatting import format_plain_day
from portal.i18n import in_practice_locale
from portal.models import JobState, OutboxMessage, Partner, Referral
from portal.notifications.outbox import portal_url, queue_email
from portal.scorecard import metrics
from portal.scorecard.periods import Period, last_complete_week, latest_re_referral_week
from portal.scorecard.report import display, one_table
from portal.scorecard.tables import (
    FIRST_TOUCH_MEDIAN,
    FIRST_TOUCH_P90,
    INCOMPLETE,
    RE_REFERRAL,
    RE_REFERRAL_ELAPSED,
    RE_REFERRAL_FOLLOWED,
    STARTED_CARE,
    SUBMITTED_REFERRALS,
    SUMMARY,
    percent,
)

log = logging.getLogger(__name__)

STATE_NAME = "weekly_summary"
# An office that has sent nothing for this long gets no weekly email: a quiet week still
# reminds an office that refers, but one that stopped (or never started) is not sent a
# page of zeros every Monday. Partner success sees those in the league table.
STILL_REFERRING = timedelta(days=90)
# Last week's re-referral figures are always empty (its 30 days are still running): the
# emails report the latest cohort whose 30 days have passed instead.
LAST_WEEKS_RE_REFERRAL = {RE_REFERRAL.name, RE_REFERRAL_FOLLOWED.name, RE_REFERRAL_ELAPSED.name}


@dataclass(frozen=True)
class WeeklyEmail:
    key: str
    recipient: str
    template: str
    context: dict[str, object]


def weekly_message_key(week: Period, recipient: str) -> str:
    """The outbox key of one weekly email, the same on every run; `recipient` is
    "partner-success" or "partner/<id>". The portal's address is part of it, so a
    staging and a production portal never send the same Message-ID."""
    base = current_app.config["PORTAL_BASE_URL"].rstrip("/")
    name = f"{base}/weekly-scorecard/{week.first_day.isoformat()}/{recipient}"
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


def send_weekly_scorecards() -> int:
    """Queue last week's scorecard emails that are not in the outbox yet; returns how
    many this run wrote. Safe to run every hour, after a crash, and twice at once."""
    week = last_complete_week()
    state = db.session.get(JobState, STATE_NAME)
    if state is not None and state.value.get("week") == week.first_day.isoformat():
        return 0
    with in_practice_locale():
        emails = weekly_emails(week, utcnow())
    db.session.rollback()  # end the reading transaction: each message is its own
    written = sum(_queue_once(email) for email in emails)
    _remember_week_done(week)
    log.info("weekly scorecards for %s: %d of %d written", week.first_day, written, len(emails))
    return written


def weekly_emails(week: Period, now: datetime) -> list[WeeklyEmail]:
    """Every email for `week`: one per partner still referring, then partner success's.
    The same few grouped queries whatever the number of partners."""
    cohort = latest_re_referral_week(now)
    # Partners first: the league tables, read after, hold every one of them (partners
    # are never deleted).
    partners = _partners_still_referring(now)
    this_week = {row.partner_id: row for row in metrics.league_table(week.scope(), now)}
    touches = metrics.first_touch_by_partner(week.scope())
    re_referral = metrics.re_referral_by_partner(cohort.scope(), now)
    shared = {
        "period": week.label,
        "week_day": format_plain_day(week.first_day),
        "cohort_day": format_plain_day(cohort.first_day),
    }
    to_partners = {
        **shared,
        "practice": current_app.config["PRACTICE_NAME"],
        "link": portal_url("scorecard.partner_dashboard", **week.arguments),
    }
    emails = []
    for partner_id, name, contact, email in partners:
        row = this_week[partner_id]
        figures = [
            (SUBMITTED_REFERRALS, row.referrals),
            (FIRST_TOUCH_MEDIAN, row.first_touch_median_hours),
            (FIRST_TOUCH_P90, touches[partner_id].p90_hours if partner_id in touches else None),
            (STARTED_CARE, percent(row.conversion)),
            (INCOMPLETE, percent(row.incomplete)),
        ]
        emails.append(
            WeeklyEmail(
                weekly_message_key(week, f"partner/{partner_id}"),
                email,
                "weekly_partner",
                {
                    **to_partners,
                    "contact": contact,
                    "partner": name,
                    "submitted": row.referrals,
                    "rows": _shown(figures),
                    "re_referral": _shown_re_referral(
                        re_referral.get(partner_id, metrics.Share(0, 0)).rate
                    ),
                },
            )
        )
    summary = one_table(SUMMARY, week, None).figures()
    emails.append(
        WeeklyEmail(
            weekly_message_key(week, "partner-success"),
            current_app.config["PARTNER_SUCCESS_EMAIL"],
            "weekly_summary",
            {
                **shared,
                "rows": _shown(
                    [(c, v) for c, v in summary if c.name not in LAST_WEEKS_RE_REFERRAL]
                ),
                "re_referral": _shown_re_referral(
                    metrics.re_referral_rate(cohort.scope(), now).rate
                ),
                "partners": len(partners),
                "still_referring_days": STILL_REFERRING.days,
                "link": portal_url("scorecard.scorecard", **week.arguments),
            },
        )
    )
    return emails


def _shown(figures: list[tuple[Column, object]]) -> list[tuple[str, str]]:
    return [(column.label, display(value, column)) for column, value in figures]


def _shown_re_referral(rate: float | None) -> str | None:
    """The rate as the page shows it; None when the cohort had no referrals."""
    return None if rate is None else display(percent(rate), RE_REFERRAL)


def _partners_still_referring(now: datetime) -> list[tuple[int, str, str, str]]:
    """(id, name, contact's name, contact's email) of every active partner that sent a
    referral in the last STILL_REFERRING, by id."""
    referred = exists().where(
        Referral.partner_id == Partner.id, Referral.submitted_at >= now - STILL_REFERRING
    )
    return [
        tuple(row)
        for row in db.session.execute(
            select(
                Partner.id,
                Partner.name,
                Partner.referral_contact_name,
                Partner.referral_contact_email,
            )
            .where(Partner.active, referred)
            .order_by(Partner.id)
        )
    ]


def _queue_once(email: WeeklyEmail) -> bool:
    """Write and commit one message; False when an earlier run, or one beside this one,
    already wrote it (its key is taken)."""
    queue_email(
        recipient=email.recipient,
        template=email.template,
        message_key=email.key,
        **email.context,
    )
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        taken = select(OutboxMessage.id).where(OutboxMessage.message_key == email.key)
        if db.session.scalar(taken) is None:
            raise  # not the key: a real fault, which the job's log must show
        return False
    return True


def _remember_week_done(week: Period) -> None:
    value = {"week": week.first_day.isoformat()}
    state = db.session.get(JobState, STATE_NAME)
    if state is None:
        db.session.add(JobState(name=STATE_NAME, value=value, updated_at=utcnow()))
    else:
        state.value, state.updated_at = value, utcnow()
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # a run beside this one finished the same week first
