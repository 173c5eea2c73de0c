"""Delivering the outbox: claim a due message, send it, record the result.

Claiming is one conditional UPDATE that pushes the message's next attempt into the
future, so two runners never take the same message. A failure is retried with
exponential backoff; after OUTBOX_MAX_ATTEMPTS the message is dead-lettered for an
admin to look at. Nothing is deleted.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from flask import current_app
from sqlalchemy import select, update

from portal.claiming import skip_locked
from portal.clock import utcnow
from portal.extensions import db
from portal.models import MessageStatus, OutboxMessage
from portal.notifications.backends import DeliveryFailed, backend_for
from portal.sla.clocks import stop_partner_feedback

log = logging.getLogger(__name__)


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    dead: int = 0


def retry_delay(attempts: int) -> timedelta:
    """1, 2, 4, 8 ... minutes after the first, second, third failure; at most 6 hours."""
    base = current_app.config["OUTBOX_RETRY_BASE_SECONDS"]
    return timedelta(seconds=min(base * 2 ** max(0, attempts - 1), 6 * 3600))


def claim_due_messages(limit: int) -> list[int]:
    """Take up to `limit` due messages for this runner (commits).

    The rows are selected with SKIP LOCKED (PostgreSQL) and leased by one conditional
    UPDATE: pushing their next attempt past the lease is the claim, so a runner that
    dies mid-send leaves its messages to be retried once the lease runs out.
    """
    now = utcnow()
    lease = timedelta(seconds=current_app.config["OUTBOX_CLAIM_SECONDS"])
    due = skip_locked(
        select(OutboxMessage.id)
        .where(
            OutboxMessage.status == MessageStatus.PENDING,
            OutboxMessage.next_attempt_at <= now,
        )
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
    )
    ids = list(db.session.scalars(due))
    claimed = []
    for message_id in ids:
        result = db.session.execute(
            update(OutboxMessage)
            .where(
                OutboxMessage.id == message_id,
                OutboxMessage.status == MessageStatus.PENDING,
                OutboxMessage.next_attempt_at <= now,
            )
            .values(next_attempt_at=now + lease, attempts=OutboxMessage.attempts + 1)
            .execution_options(synchronize_session=False)
        )
        if result.rowcount == 1:
            claimed.append(message_id)
    db.session.commit()
    return claimed


def deliver_due_messages(limit: int | None = None) -> DeliveryReport:
    """Send what is due now. Safe to run again at any time and from several places."""
    report = DeliveryReport()
    for message_id in claim_due_messages(limit or current_app.config["OUTBOX_BATCH_SIZE"]):
        message = db.session.get(OutboxMessage, message_id, populate_existing=True)
        try:
            backend_for(message.channel).send(message)
        except DeliveryFailed as failure:
            message.last_error = str(failure)[:500]
            if message.attempts >= current_app.config["OUTBOX_MAX_ATTEMPTS"]:
                message.status = MessageStatus.DEAD
                report.dead += 1
                log.error("outbox message %s dead after %s attempts", message.id, message.attempts)
            else:
                message.next_attempt_at = utcnow() + retry_delay(message.attempts)
                report.failed += 1
                log.warning("outbox message %s failed (attempt %s)", message.id, message.attempts)
        else:
            message.status = MessageStatus.SENT
            message.sent_at = utcnow()
            message.last_error = None
            if message.purpose == "partner_outcome" and message.referral_id:
                stop_partner_feedback(message.referral_id)
            report.sent += 1
            log.info("outbox message %s sent by %s", message.id, message.channel)
        db.session.commit()
    return report


def retry_dead_message(message: OutboxMessage) -> None:
    """Put a dead-lettered message back in the queue (an admin's decision)."""
    message.status = MessageStatus.PENDING
    message.attempts = 0
    message.next_attempt_at = utcnow()
