"""How messages leave the portal: SMTP for email, a provider interface for SMS.

Backends are chosen by settings (MAIL_BACKEND, SMS_BACKEND). "record" backends keep
what they were given in memory instead of sending it, for development and tests; the
dev outbox page shows every message either way.

A delivery run asks a backend to `open()` a sender, hands it messages one by one and
closes it: the SMTP sender keeps one connection for the whole batch. Every message
carries its `message_key`, the same on every attempt: the email's Message-ID and the
SMS provider's idempotency key, so a copy re-sent after a crash is recognisably the
same message.
"""

from __future__ import annotations

import logging
import mimetypes
import re
import smtplib
import ssl
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Protocol

from flask import Config, Flask, current_app

from portal.models import MessageChannel, OutboxMessage

# The types attachments are sent with: Python's own table plus .ics, which it lacks
# (a system's mime.types may know it, a slim container's may not exist).
ATTACHMENT_TYPES = mimetypes.MimeTypes()
ATTACHMENT_TYPES.add_type("text/calendar", ".ics")
CALENDAR_METHOD = re.compile(r"^METHOD:([A-Za-z-]+)\r?$", re.MULTILINE)

# The most SMTP waits, each up to MAIL_TIMEOUT_SECONDS, that one message can take on a
# reused connection: MAIL, RCPT, DATA, the end of the data and a RSET after a refusal
# (5); if the server had dropped the connection, a new one (connect, EHLO, STARTTLS,
# EHLO, AUTH: 5) and the message again (5). A new batch's first message needs at most
# 10 (a fresh connection is not retried). A message's claim must outlast this.
SMTP_WAITS_PER_MESSAGE = 15

log = logging.getLogger(__name__)


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


class ProviderUnreachable(DeliveryFailed):
    """No connection to the provider could be made: the run's other messages on this
    channel wait for the next run instead of failing one by one."""


class Sender(Protocol):
    """Hands messages to one provider during one delivery run."""

    def send(self, message: OutboxMessage) -> None:
        """Hand `message` over, or raise DeliveryFailed. `message.message_key` is the
        same on every attempt: pass it on as the provider's idempotency key."""

    def close(self) -> None:
        """End the run (log out, close the connection); the sender is not used again."""


class Backend(Protocol):
    def open(self) -> Sender:
        """A sender for one delivery run; it connects when first used, if it must."""


def email_for(message: OutboxMessage, mail_from: str) -> EmailMessage:
    """The email of an outbox message: the same headers and body on every attempt."""
    email = EmailMessage()
    email["From"] = mail_from
    email["To"] = message.recipient
    email["Subject"] = message.subject
    # When the message was written: a re-sent copy is the same message (RFC 5322 3.6.1).
    email["Date"] = format_datetime(message.created_at)
    domain = mail_from.rsplit("@", 1)[-1]
    email["Message-ID"] = f"<{message.message_key}@{domain}>"
    email.set_content(message.body)
    if message.attachment_name is not None:
        add_attachment(email, message.attachment_name, message.attachment_body or "")
    return email


class SmtpEmailBackend:
    """Email over SMTP with STARTTLS or implicit TLS and optional credentials."""

    def __init__(self, app: Flask) -> None:
        self.config = app.config

    def open(self) -> SmtpConnection:
        return SmtpConnection(self.config)


class SmtpConnection:
    """One SMTP connection for a batch of messages.

    Opened by the first message, closed (QUIT) by `close`. A server may drop a
    connection that has carried messages (an idle or per-connection limit, a 421):
    then it is opened again, once, for the message at hand. A fresh connection that
    fails, or any other failure, fails that message only; a connection left in an
    unknown state (a timeout) is dropped and the next message opens a new one.
    """

    def __init__(self, config: Config) -> None:
        self.config = config
        self.smtp: smtplib.SMTP | None = None
        self.carried = 0  # messages the open connection has carried

    def send(self, message: OutboxMessage) -> None:
        email = email_for(message, self.config["MAIL_FROM"])
        reused = self.smtp is not None
        if not reused:
            self._connect()
        try:
            self._send(email)
        except DeliveryFailed as failure:
            if not (reused and _connection_dropped(failure.__cause__)):
                raise
            log.info("SMTP connection dropped after %d messages; reconnecting", self.carried)
            self._connect()
            self._send(email)

    def close(self) -> None:
        if self.smtp is None:
            return
        try:
            self.smtp.quit()
        except (OSError, smtplib.SMTPException):
            self.smtp.close()
        self.smtp = None

    def _connect(self) -> None:
        config = self.config
        context = ssl.create_default_context()
        smtp_class = smtplib.SMTP_SSL if config["MAIL_USE_SSL"] else smtplib.SMTP
        kwargs = {"context": context} if config["MAIL_USE_SSL"] else {}
        smtp = None
        try:
            smtp = smtp_class(
                config["MAIL_HOST"],
                config["MAIL_PORT"],
                timeout=config["MAIL_TIMEOUT_SECONDS"],
                **kwargs,
            )
            if config["MAIL_USE_TLS"] and not config["MAIL_USE_SSL"]:
                smtp.starttls(context=context)
            if config["MAIL_USERNAME"]:
                smtp.login(config["MAIL_USERNAME"], config["MAIL_PASSWORD"] or "")
        except (OSError, smtplib.SMTPException) as error:
            if smtp is not None:
                smtp.close()
            raise ProviderUnreachable(_describe(error)) from error
        self.smtp, self.carried = smtp, 0

    def _send(self, email: EmailMessage) -> None:
        assert self.smtp is not None
        try:
            self.smtp.send_message(email)
        except (OSError, smtplib.SMTPException) as error:
            # After a plain refusal smtplib has reset the transaction and the connection
            # carries on; after anything else its state is unknown.
            refused = isinstance(error, SMTP_REFUSALS)
            if not refused or _connection_dropped(error) or self.smtp.sock is None:
                self.smtp.close()
                self.smtp = None
            raise DeliveryFailed(_describe(error)) from error
        self.carried += 1


SMTP_REFUSALS = (smtplib.SMTPResponseException, smtplib.SMTPRecipientsRefused)


def _connection_dropped(error: BaseException | None) -> bool:
    """Whether `error` says the server closed the connection (not that it refused)."""
    if isinstance(error, smtplib.SMTPServerDisconnected | ConnectionError):
        return True
    if isinstance(error, smtplib.SMTPResponseException):
        return error.smtp_code == 421
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return any(code == 421 for code, _ in error.recipients.values())
    return False


def _describe(error: BaseException) -> str:
    return f"SMTP: {type(error).__name__}: {error}"


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
        self.message_keys: list[str] = []  # what a provider gets as idempotency keys

    def open(self) -> RecordingBackend:
        return self

    def close(self) -> None:
        pass

    def send(self, message: OutboxMessage) -> None:
        self.sent.append((message.recipient, message.subject, message.body))
        self.message_keys.append(message.message_key)
        if message.attachment_name is not None:
            self.attachments.append(
                (message.recipient, message.attachment_name, message.attachment_body or "")
            )


class NoSmsProvider:
    """SMS_BACKEND=none, production's default until a provider is plugged in: patients
    are written to by email instead (portal.notifications.referrals.message_patient),
    and a text that was queued anyway fails, so it ends on the admins' undelivered page
    rather than being marked sent and lost."""

    def __init__(self, _app: Flask | None = None) -> None:
        pass

    def open(self) -> NoSmsProvider:
        return self

    def close(self) -> None:
        pass

    def send(self, message: OutboxMessage) -> None:
        raise DeliveryFailed("no SMS provider is configured (SMS_BACKEND=none)")


EMAIL_BACKENDS = {"smtp": SmtpEmailBackend, "record": RecordingBackend}
# Real SMS providers plug in here: a class built with the app whose open() returns a
# Sender for one delivery run (send(message), close()). send() raises DeliveryFailed
# when the provider refuses or fails, ProviderUnreachable when it cannot be reached at
# all. It must pass `message.message_key` to the provider as the request's idempotency
# key (or client reference, where the provider deduplicates on that): the key is the
# same on every attempt, so a text re-sent after a crash between the provider's answer
# and our commit is one the provider drops, or at least one the two sides can match.
SMS_BACKENDS = {"record": RecordingBackend, "none": NoSmsProvider}


def texts_can_be_sent(config) -> bool:
    return config["SMS_BACKEND"] != "none"


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
