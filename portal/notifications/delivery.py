"""Delivering the outbox: claim a due message, send it, record the result.

Messages are claimed one at a time, just before each is sent. Claiming is one
conditional UPDATE that pushes the message's next attempt into the future (the claim's
lease), so two runners never take the same message; the lease only has to outlast one
send, which MAIL_TIMEOUT_SECONDS bounds (OUTBOX_CLAIM_SECONDS defaults to that bound).
Claiming a batch for one lease let a slow server run the lease out mid-batch and a
second runner send the tail again. Of the cures, claiming one at a time is the simplest
that holds: renewing each message's lease costs the same write per message plus an
ownership check, and a lease sized from batch x timeout (100 x 20 s, more since one
send can wait several times) would leave a dead runner's messages waiting half an hour
or more. A batch is now what one connection carries: a run opens a sender per channel
when its first message comes up and replaces it every OUTBOX_BATCH_SIZE messages.

Delivery is at least once: a runner killed between the provider's acceptance and our
commit leaves the message to be sent again when its lease runs out. The copy carries
the message's key (Message-ID, SMS idempotency key), so the other side can tell, and a
crash repeats at most the one message in flight. A failure is retried with exponential
backoff; after OUTBOX_MAX_ATTEMPTS the message is dead-lettered for an admin to look
at. Nothing is deleted.

A claim counts an attempt (so a message that kills its runner every time still ends),
but a provider that could not be reached at all gives it back: an outage longer than
the backoff's sum (about two hours for 8 attempts) used to dead-letter everything
queued meanwhile. Such a message backs off up to OUTBOX_UNREACHABLE_RETRY_MAX_SECONDS
and goes out when the provider is back; one the provider refuses still ends dead.

Just before sending, a message whose purpose was settled while it waited (a reminder
for a request already answered: portal/notifications/purposes.py) is cancelled instead;
the claim made it this runner's, so no one else sends it meanwhile.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass
from datetime import timedelta

from flask import Flask, current_app
from sqlalchemy import select, update

from portal.claiming import skip_locked
from portal.clock import utcnow
from portal.extensions import db
from portal.models import MessageChannel, MessageStatus, OutboxMessage
from portal.notifications.backends import (
    SMTP_WAITS_PER_MESSAGE,
    DeliveryFailed,
    ProviderUnreachable,
    Sender,
    backend_for,
)
from portal.notifications.purposes import why_not_send
from portal.sla.clocks import stop_partner_feedback

log = logging.getLogger(__name__)
# The share of OUTBOX_DELIVERY_SECONDS a run may keep starting new messages for.
RUN_SHARE = 0.9


@dataclass
class DeliveryReport:
    sent: int = 0
    failed: int = 0
    dead: int = 0
    cancelled: int = 0

    @property
    def tried(self) -> int:
        return self.sent + self.failed + self.dead + self.cancelled


def retry_delay(attempts: int, longest: float = 6 * 3600) -> timedelta:
    """1, 2, 4, 8 ... minutes after the first, second, third failure; at most `longest`
    seconds (6 hours)."""
    base = current_app.config["OUTBOX_RETRY_BASE_SECONDS"]
    return timedelta(seconds=min(base * 2 ** min(max(0, attempts - 1), 30), longest))


def claim_due_messages(limit: int, skip_channels: Collection[MessageChannel] = ()) -> list[int]:
    """Take up to `limit` due messages for this runner (commits).

    The rows are selected with SKIP LOCKED (PostgreSQL) and leased by one conditional
    UPDATE: pushing their next attempt past the lease is the claim, so a runner that
    dies mid-send leaves its messages to be retried once the lease runs out.
    """
    now = utcnow()
    lease = timedelta(seconds=current_app.config["OUTBOX_CLAIM_SECONDS"])
    due = (
        select(OutboxMessage.id)
        .where(
            OutboxMessage.status == MessageStatus.PENDING,
            OutboxMessage.next_attempt_at <= now,
        )
        .order_by(OutboxMessage.next_attempt_at, OutboxMessage.id)
        .limit(limit)
    )
    if skip_channels:
        due = due.where(OutboxMessage.channel.not_in(list(skip_channels)))
    ids = list(db.session.scalars(skip_locked(due)))
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
    """Send what is due now, until nothing is due, `limit` messages were tried or the
    next run is nearly due. Safe to run again at any time and from several places."""
    config = current_app.config
    warn_if_a_send_can_outlast_its_claim(current_app)
    report = DeliveryReport()
    # Ending just before the next run is due lets the other jobs take their turn and
    # the next run carry on at once (a run still going at its tick would skip it).
    stop_at = time.monotonic() + RUN_SHARE * config["OUTBOX_DELIVERY_SECONDS"]
    senders: dict[MessageChannel, Sender] = {}
    carried: Counter[MessageChannel] = Counter()
    unreachable: set[MessageChannel] = set()
    try:
        while (limit is None or report.tried < limit) and time.monotonic() < stop_at:
            # One at a time: a claim covers one send, never the wait behind a batch.
            claimed = claim_due_messages(1, skip_channels=unreachable)
            if not claimed:
                break
            message = db.session.get(OutboxMessage, claimed[0], populate_existing=True)
            if (reason := why_not_send(message)) is not None:
                record_cancelled(message, reason, report)
                db.session.commit()
                continue
            channel = message.channel
            if channel not in senders:
                senders[channel] = backend_for(channel).open()
            try:
                senders[channel].send(message)
            except ProviderUnreachable as failure:
                unreachable.add(channel)  # the channel's other messages wait for a run
                record_unreachable(message, failure, report)
            except DeliveryFailed as failure:
                record_failure(message, failure, report)
            except Exception as error:  # a bug in a backend fails this message, not the run
                log.exception("outbox message %s: unexpected error while sending", message.id)
                record_failure(message, DeliveryFailed(f"{type(error).__name__}"), report)
            else:
                record_sent(message, report)
            # At once, on its own: a result committed with the next claim would be lost,
            # and the message sent again, if that claim failed (a lock wait, a lost
            # connection).
            db.session.commit()
            carried[channel] += 1
            if carried[channel] >= config["OUTBOX_BATCH_SIZE"]:
                senders.pop(channel).close()  # the next batch gets a new connection
                carried[channel] = 0
        db.session.commit()
    finally:
        for sender in senders.values():
            sender.close()
    return report


def record_sent(message: OutboxMessage, report: DeliveryReport) -> None:
    message.status = MessageStatus.SENT
    message.sent_at = utcnow()
    message.last_error = None
    if message.purpose == "partner_outcome" and message.referral_id:
        stop_partner_feedback(message.referral_id)
    report.sent += 1
    log.info("outbox message %s sent by %s", message.id, message.channel)


def record_failure(message: OutboxMessage, failure: DeliveryFailed, report: DeliveryReport) -> None:
    message.last_error = str(failure)[:500]
    message.unreachable_tries = 0  # the provider answered: it is reachable again
    if message.attempts >= current_app.config["OUTBOX_MAX_ATTEMPTS"]:
        message.status = MessageStatus.DEAD
        report.dead += 1
        log.error("outbox message %s dead after %s attempts", message.id, message.attempts)
    else:
        message.next_attempt_at = utcnow() + retry_delay(message.attempts)
        report.failed += 1
        log.warning("outbox message %s failed (attempt %s)", message.id, message.attempts)


def record_unreachable(
    message: OutboxMessage, failure: ProviderUnreachable, report: DeliveryReport
) -> None:
    """Nothing was handed over: the claim's attempt is given back and the message backs
    off, capped, to wait for the provider however long it is away."""
    message.attempts -= 1
    message.unreachable_tries += 1
    message.last_error = str(failure)[:500]
    longest = current_app.config["OUTBOX_UNREACHABLE_RETRY_MAX_SECONDS"]
    message.next_attempt_at = utcnow() + retry_delay(message.unreachable_tries, longest)
    report.failed += 1
    log.warning(
        "outbox message %s waits: %s is unreachable (%s runs so far)",
        message.id,
        message.channel,
        message.unreachable_tries,
    )


def record_cancelled(message: OutboxMessage, reason: str, report: DeliveryReport) -> None:
    """What the message was about was settled while it waited: it is kept, not sent."""
    message.status = MessageStatus.CANCELLED
    message.attempts -= 1  # claimed, never tried
    message.last_error = reason[:500]
    report.cancelled += 1
    log.info("outbox message %s cancelled: %s", message.id, reason)


def warn_if_a_send_can_outlast_its_claim(app: Flask) -> None:
    """Say once, in the log, when OUTBOX_CLAIM_SECONDS is shorter than the longest one
    email can take: a slow server could then let a claim run out mid-send and another
    runner send the message again."""
    if app.extensions.get("portal.notifications.claim_checked"):
        return
    app.extensions["portal.notifications.claim_checked"] = True
    longest = SMTP_WAITS_PER_MESSAGE * app.config["MAIL_TIMEOUT_SECONDS"]
    if app.config["MAIL_BACKEND"] == "smtp" and app.config["OUTBOX_CLAIM_SECONDS"] < longest:
        log.warning(
            "OUTBOX_CLAIM_SECONDS=%s is shorter than one email can take (%s SMTP waits of "
            "MAIL_TIMEOUT_SECONDS=%s); a slow mail server could be sent a message twice",
            app.config["OUTBOX_CLAIM_SECONDS"],
            SMTP_WAITS_PER_MESSAGE,
            app.config["MAIL_TIMEOUT_SECONDS"],
        )


def retry_dead_message(message: OutboxMessage) -> None:
    """Put a dead-lettered message back in the queue (an admin's decision)."""
    message.status = MessageStatus.PENDING
    message.attempts = 0
    message.next_attempt_at = utcnow()
