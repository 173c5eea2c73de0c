"""Messages about a person's own account: password reset links and change notices."""

from __future__ import annotations

from flask import current_app

from portal.models import User
from portal.notifications.outbox import portal_url, queue_email


def send_password_reset(user: User, token: str) -> None:
    # The token travels in the query string: access logs record paths only, and the
    # page moves it into the session and redirects to a clean address at once.
    queue_email(
        recipient=user.email,
        template="password_reset",
        purpose="password_reset",
        full_name=user.full_name,
        link=portal_url("accounts.reset_password", token=token),
        minutes=int(current_app.config["PASSWORD_RESET_MAX_AGE"].total_seconds() // 60),
    )


def send_password_changed_notice(user: User) -> None:
    queue_email(
        recipient=user.email,
        template="password_changed",
        purpose="password_changed",
        full_name=user.full_name,
        forgot_link=portal_url("accounts.forgot_password"),
    )
