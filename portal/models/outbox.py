"""The transactional outbox: a message is written with the change it reports."""

from __future__ import annotations

import enum
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


class OutboxMessage(Base):
    __tablename__ = "outbox_message"
    __table_args__ = (Index("ix_outbox_message_due", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    channel: Mapped[MessageChannel] = mapped_column(enum_column(MessageChannel, "channel"))
    recipient: Mapped[str] = mapped_column(String(254))
    subject: Mapped[str] = mapped_column(String(200), default="")
    # Bodies say that something changed and link to the portal; no patient data.
    body: Mapped[str] = mapped_column(Text)
    referral_id: Mapped[int | None] = mapped_column(ForeignKey("referral.id"), index=True)
    # What the message is for, where delivery itself matters (the partner's outcome
    # notice stops the partner-feedback clock when it is sent).
    purpose: Mapped[str | None] = mapped_column(String(40))
    # One text attachment (a visit's .ics), rendered with the message and so written in
    # the same transaction: delivery only reads the row. The content type follows from
    # the name's extension. Text only, and like the body it carries no patient data.
    attachment_name: Mapped[str | None] = mapped_column(String(100))
    attachment_body: Mapped[str | None] = mapped_column(Text)
    status: Mapped[MessageStatus] = mapped_column(
        enum_column(MessageStatus, "message_status"), default=MessageStatus.PENDING
    )
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(String(500))
