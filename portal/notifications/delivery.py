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

from portal.clock import utcnow
from portal.extensions import db
from portal.models import MessageStatus, OutboxMessage
from portal.notifications.backends import DeliveryFailed, backend_for

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


def due_message_ids(limit: int) -> list[int]:
    return list(
        db.session.scalars(
            select(OutboxMessage.id)
            .where(
                OutboxMessage.status == MessageStatus.PENDING,
                OutboxMessage.next_attempt_at <= utcnow(),
            )
            .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
            .limit(limit)
        )
    )


def claim(message_id: int) -> OutboxMessage | None:
    """Take the message for this runner, or None if another runner has it (commits)."""
    now = utcnow()
    lease = timedelta(seconds=current_app.config["OUTBOX_CLAIM_SECONDS"])
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
    db.session.commit()
    if result.rowcount != 1:
        return None
    return db.session.get(OutboxMessage, message_id, populate_existing=True)


def deliver_due_messages(limit: int = 100) -> DeliveryReport:
    """Send what is due now. Safe to run again at any time and from several places."""
    report = DeliveryReport()
    for message_id in due_message_ids(limit):
        message = claim(message_id)
        if message is None:
            continue
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
            report.sent += 1
            log.info("outbox message %s sent by %s", message.id, message.channel)
        db.session.commit()
    return report


def retry_dead_message(message: OutboxMessage) -> None:
    """Put a dead-lettered message back in the queue (an admin's decision)."""
    message.status = MessageStatus.PENDING
    message.attempts = 0
    message.next_attempt_at = utcnow()
