"""The transactional outbox: a message is written with the change it reports."""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from portal.clock import utcnow
from portal.models.base import Base, enum_column


class MessageChannel(enum.StrEnum):
    EMAIL = "email"
    SMS = "sms"


class MessageStatus(enum.StrEnum):
    PENDING = "pending"
    SENT = "sent"
    DEAD = "dead"
    # Never sent because what it was about was settled first (a reminder for a request
    # answered, a link used, while the message waited): kept, like every message.
    CANCELLED = "cancelled"


def new_message_key() -> str:
    """A random, unique key for one outbox message (a UUID4 string)."""
    return str(uuid.uuid4())


class OutboxMessage(Base):
    __tablename__ = "outbox_message"
    __table_args__ = (Index("ix_outbox_message_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Made when the message is written and the same on every attempt: the email's
    # Message-ID and the SMS provider's idempotency key, so a re-send after a crash is
    # recognisably the same message. queue_email/queue_sms set it at once; the default
    # covers any other writer.
    message_key: Mapped[str] = mapped_column(String(36), unique=True, default=new_message_key)
    channel: Mapped[MessageChannel] = mapped_column(enum_column(MessageChannel, "channel"))
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200), default="")
    # Bodies say that something changed and link to the portal; no patient data.
    body: Mapped[str] = mapped_column(Text)
    referral_id: Mapped[int | None] = mapped_column(ForeignKey("referral.id"), index=True)
    # What the message is for, where delivery itself matters (the partner's outcome
    # notice stops the partner-feedback clock when it is sent; a reminder is not sent
    # once what it reminds about is settled: portal/notifications/purposes.py), and the
    # row it is about where the referral alone does not say (the information request a
    # reminder chases, the patient link it asks the patient to use).
    purpose: Mapped[str | None] = mapped_column(String(40))
    regarding_id: Mapped[int | None]
    # One text attachment (a visit's .ics), rendered with the message and so written in
    # the same transaction: delivery only reads the row. The content type follows from
    # the name's extension. Text only, and like the body it carries no patient data.
    attachment_name: Mapped[str | None] = mapped_column(String(100))
    attachment_body: Mapped[str | None] = mapped_column(Text)
    status: Mapped[MessageStatus] = mapped_column(
        enum_column(MessageStatus, "message_status"), default=MessageStatus.PENDING
    )
    # Attempts the provider answered (or that ended the runner mid-send); after
    # OUTBOX_MAX_ATTEMPTS the message is dead. Runs that found the provider unreachable
    # are counted apart: an outage backs off but never dead-letters what waits for it.
    attempts: Mapped[int] = mapped_column(default=0)
    unreachable_tries: Mapped[int] = mapped_column(default=0, server_default="0")
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
