"""The development outbox: every message the portal has written, newest first."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, flash, redirect, render_template, url_for
from sqlalchemy import select

from portal.extensions import db
from portal.models import OutboxMessage
from portal.notifications.delivery import deliver_due_messages

bp = Blueprint("notifications", __name__, url_prefix="/dev")

PAGE_SIZE = 200


@bp.before_request
def _development_only():
    # Bodies hold links that open patient pages: never expose this outside development.
    if not current_app.config["DEV_OUTBOX_PAGE"]:
        abort(404)


@bp.get("/outbox")
def outbox():
    """Every message, as the recipient would get it."""
    messages = db.session.scalars(
        select(OutboxMessage).order_by(OutboxMessage.id.desc()).limit(PAGE_SIZE)
    ).all()
    return render_template("notifications/outbox.html", messages=messages)


@bp.post("/outbox/deliver")
def deliver():
    """Run the delivery job once, without waiting for the jobs process."""
    report = deliver_due_messages()
    flash(f"Delivered {report.sent}, failed {report.failed}, dead {report.dead}.", "info")
    return redirect(url_for("notifications.outbox"))
