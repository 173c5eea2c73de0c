"""How messages leave the portal: SMTP for email, a provider interface for SMS.

Backends are chosen by settings (MAIL_BACKEND, SMS_BACKEND). "record" backends keep
what they were given in memory instead of sending it, for development and tests; the
dev outbox page shows every message either way.
"""

from __future__ import annotations

import mimetypes
import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import formatdate
from typing import Protocol

from flask import Flask, current_app

from portal.models import MessageChannel, OutboxMessage

# The types attachments are sent with: Python's own table plus .ics, which it lacks
# (a system's mime.types may know it, a slim container's may not exist).
ATTACHMENT_TYPES = mimetypes.MimeTypes()
ATTACHMENT_TYPES.add_type("text/calendar", ".ics")
CALENDAR_METHOD = re.compile(r"^METHOD:([A-Za-z-]+)\r?$", re.MULTILINE)


def attachment_content_type(name: str, body: str) -> tuple[str, str, dict[str, str]]:
    """(maintype, subtype, parameters) for a stored attachment, from its name.

    A calendar file's METHOD is repeated as a parameter, as mail clients expect
    (RFC 6047); anything unknown is plain text.
    """
    content_type = ATTACHMENT_TYPES.guess_type(name, strict=False)[0] or "text/plain"
    maintype, subtype = content_type.split("/", 1)
    params: dict[str, str] = {}
    if content_type == "text/calendar" and (method := CALENDAR_METHOD.search(body)):
        params["method"] = method.group(1).upper()
    return maintype, subtype, params


class DeliveryFailed(Exception):
    """The backend could not hand the message over; it will be retried."""


class Backend(Protocol):
    def send(self, message: OutboxMessage) -> None: ...


class SmtpEmailBackend:
    """Email over SMTP with STARTTLS or implicit TLS and optional credentials."""

    def __init__(self, app: Flask) -> None:
        self.config = app.config

    def send(self, message: OutboxMessage) -> None:
        config = self.config
        email = EmailMessage()
        email["From"] = config["MAIL_FROM"]
        email["To"] = message.recipient
        email["Subject"] = message.subject
        email["Date"] = formatdate(localtime=False)
        # A stable id per outbox row lets a receiving system drop a redelivered copy.
        domain = config["MAIL_FROM"].rsplit("@", 1)[-1]
        email["Message-ID"] = (
            f"<outbox-{message.id}.{int(message.created_at.timestamp())}@{domain}>"
        )
        email.set_content(message.body)
        if message.attachment_name is not None:
            add_attachment(email, message.attachment_name, message.attachment_body or "")
        context = ssl.create_default_context()
        smtp_class = smtplib.SMTP_SSL if config["MAIL_USE_SSL"] else smtplib.SMTP
        kwargs = {"context": context} if config["MAIL_USE_SSL"] else {}
        try:
            with smtp_class(
                config["MAIL_HOST"],
                config["MAIL_PORT"],
                timeout=config["MAIL_TIMEOUT_SECONDS"],
                **kwargs,
            ) as smtp:
                if config["MAIL_USE_TLS"] and not config["MAIL_USE_SSL"]:
                    smtp.starttls(context=context)
                if config["MAIL_USERNAME"]:
                    smtp.login(config["MAIL_USERNAME"], config["MAIL_PASSWORD"] or "")
                smtp.send_message(email)
        except (OSError, smtplib.SMTPException) as error:
            raise DeliveryFailed(f"SMTP: {type(error).__name__}: {error}") from error


def add_attachment(email: EmailMessage, name: str, body: str) -> None:
    """Attach a stored text attachment with the content type its name implies.

    Sent as bytes (base64) so it arrives exactly as stored: a calendar file keeps the
    CRLF line ends RFC 5545 requires, which the text path would rewrite.
    """
    maintype, subtype, params = attachment_content_type(name, body)
    if maintype == "text":
        params = {"charset": "utf-8", **params}
    email.add_attachment(
        body.encode("utf-8"), maintype=maintype, subtype=subtype, filename=name, params=params
    )


class RecordingBackend:
    """Keeps what it was asked to send. The development SMS provider and mail backend."""

    def __init__(self, _app: Flask | None = None) -> None:
        self.sent: list[tuple[str, str, str]] = []  # (recipient, subject, body)
        self.attachments: list[tuple[str, str, str]] = []  # (recipient, name, body)

    def send(self, message: OutboxMessage) -> None:
        self.sent.append((message.recipient, message.subject, message.body))
        if message.attachment_name is not None:
            self.attachments.append(
                (message.recipient, message.attachment_name, message.attachment_body or "")
            )


EMAIL_BACKENDS = {"smtp": SmtpEmailBackend, "record": RecordingBackend}
# Real SMS providers plug in here: a class with send(message) raising DeliveryFailed.
SMS_BACKENDS = {"record": RecordingBackend}


def backend_for(channel: MessageChannel) -> Backend:
    """The configured backend for a channel, one instance per app."""
    key = f"portal.notifications.backend.{channel.value}"
    app = current_app._get_current_object()
    if key not in app.extensions:
        if channel is MessageChannel.EMAIL:
            backend_class = EMAIL_BACKENDS[app.config["MAIL_BACKEND"]]
        else:
            backend_class = SMS_BACKENDS[app.config["SMS_BACKEND"]]
        app.extensions[key] = backend_class(app)
    return app.extensions[key]
