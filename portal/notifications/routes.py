"""The development outbox: every message the portal has written, newest first.

Registered only when DEV_OUTBOX_PAGE is on (development and the tests), and even
there for signed-in staff only: message bodies hold links that open patient pages."""

from __future__ import annotations

from io import BytesIO

from flask import Blueprint, abort, flash, redirect, render_template, send_file, url_for
from flask_babel import gettext
from sqlalchemy import select

from portal.accounts.sessions import roles_required
from portal.extensions import db
from portal.models import STAFF_ROLES, OutboxMessage
from portal.notifications.backends import attachment_content_type
from portal.notifications.delivery import deliver_due_messages

bp = Blueprint("notifications", __name__, url_prefix="/dev")

PAGE_SIZE = 200


@bp.get("/outbox")
@roles_required(*STAFF_ROLES)
def outbox():
    """Every message, as the recipient would get it."""
    messages = db.session.scalars(
        select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(PAGE_SIZE)
    ).all()
    return render_template("notifications/outbox.html", messages=messages)


@bp.get("/outbox/<id:message_id>/attachment")
@roles_required(*STAFF_ROLES)
def attachment(message_id: int):
    """A message's attachment, downloaded as the recipient would save it."""
    message = db.session.get(OutboxMessage, message_id)
    if message is None or message.attachment_name is None:
        abort(404)
    body = message.attachment_body or ""
    maintype, subtype, params = attachment_content_type(message.attachment_name, body)
    parameters = "".join(f"; {key}={value}" for key, value in params.items())
    return send_file(
        BytesIO(body.encode("utf-8")),
        mimetype=f"{maintype}/{subtype}{parameters}",
        as_attachment=True,
        download_name=message.attachment_name,
    )


@bp.post("/outbox/deliver")
@roles_required(*STAFF_ROLES)
def deliver():
    """Run the delivery job once, without waiting for the jobs process."""
    report = deliver_due_messages()
    flash(
        gettext(
            "Delivered %(sent)s, failed %(failed)s, dead %(dead)s.",
            sent=report.sent,
            failed=report.failed,
            dead=report.dead,
        ),
        "info",
    )
    return redirect(url_for("notifications.outbox"))
