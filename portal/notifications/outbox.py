"""Queueing messages in the transactional outbox.

A message is added to the same session as the change it reports, so it exists exactly
when the change is committed. Delivery happens later, outside the request.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from babel import Locale
from flask import current_app, render_template
from flask_babel import force_locale

from portal.extensions import db
from portal.i18n import in_practice_locale
from portal.models import MessageChannel, OutboxMessage, Referral
from portal.models.outbox import new_message_key
from portal.notifications.sms import to_gsm7


def portal_url(endpoint: str, **values: object) -> str:
    """An absolute link into the portal that works without a request (jobs, the demo)."""
    base = urlsplit(current_app.config["PORTAL_BASE_URL"])
    adapter = current_app.url_map.bind(
        base.netloc, url_scheme=base.scheme or "https", script_name=base.path or "/"
    )
    return adapter.build(endpoint, values, force_external=True)


def _written_in(locale: Locale | None):
    """Staff and partners read the practice's locale even when a patient's answer, on a
    Spanish page, is what made the message."""
    return force_locale(str(locale)) if locale else in_practice_locale()


def queue_email(
    *,
    recipient: str,
    template: str,
    referral: Referral | None = None,
    purpose: str | None = None,
    regarding_id: int | None = None,
    attachment: tuple[str, str | bytes] | None = None,
    locale: Locale | None = None,
    message_key: str | None = None,
    **context: object,
) -> OutboxMessage:
    """Render `emails/<template>.subject.txt` and `.txt` into a pending message, in
    `locale` (a patient's: portal.i18n.patient_locale) or else the practice's, whatever
    page the change came from.

    Templates get the reference and links only: no patient data ever goes in a message.
    `attachment` is one text file, (name, text or UTF-8 bytes), such as a visit's .ics;
    its content type follows from the name's extension, and it holds no patient data
    either. `message_key` makes the message's unique key deterministic, so writing the
    same message twice fails on flush (see portal.scorecard.tasks); it is random by default.
    A `purpose` (with `regarding_id`, the row it is about) lets delivery cancel a message
    that went stale while it waited (portal/notifications/purposes.py).
    """
    with _written_in(locale):
        subject = render_template(f"emails/{template}.subject.txt", **context).strip()
        body = render_template(f"emails/{template}.txt", **context)
    attachment_name = attachment_body = None
    if attachment is not None:
        attachment_name, content = attachment
        attachment_body = content.decode("utf-8") if isinstance(content, bytes) else content
    message = OutboxMessage(
        message_key=message_key or new_message_key(),  # its Message-ID on every attempt
        channel=MessageChannel.EMAIL,
        recipient=recipient,
        subject=subject,
        body=body,
        referral_id=referral.id if referral is not None else None,
        purpose=purpose,
        regarding_id=regarding_id,
        attachment_name=attachment_name,
        attachment_body=attachment_body,
    )
    db.session.add(message)
    return message


def sms_body(template: str, **context: object) -> str:
    """`sms/<template>.txt` rendered in GSM-7 (portal/notifications/sms.py): one segment."""
    return to_gsm7(render_template(f"sms/{template}.txt", **context).strip())


def queue_sms(
    *,
    recipient: str,
    template: str,
    referral: Referral | None = None,
    purpose: str | None = None,
    regarding_id: int | None = None,
    locale: Locale | None = None,
    **context: object,
) -> OutboxMessage:
    """Render `sms/<template>.txt` into a pending text message (no patient data), in
    `locale` or the practice's. `purpose` and `regarding_id` as for queue_email."""
    with _written_in(locale):
        body = sms_body(template, **context)
    message = OutboxMessage(
        message_key=new_message_key(),  # the provider's idempotency key on every attempt
        channel=MessageChannel.SMS,
        recipient=recipient,
        subject="",
        body=body,
        referral_id=referral.id if referral is not None else None,
        purpose=purpose,
        regarding_id=regarding_id,
    )
    db.session.add(message)
    return message
