"""Outbox delivery: send what is due, retry failures with backoff."""

from __future__ import annotations

from flask import Flask

from portal.notifications.delivery import deliver_due_messages


def register(every, app: Flask) -> None:
    every(
        deliver_due_messages, seconds=app.config["OUTBOX_DELIVERY_SECONDS"], job_id="deliver_outbox"
    )
