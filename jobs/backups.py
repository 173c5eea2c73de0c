"""The nightly backup, with retention (off unless BACKUP_ENABLED)."""

from __future__ import annotations

from flask import Flask

from portal.backups.tasks import take_nightly_backup
from portal.config import ConfigurationError


def register(every, app: Flask) -> None:
    if not app.config["BACKUP_ENABLED"]:
        return
    if not 0 <= app.config["BACKUP_HOUR"] <= 23:
        raise ConfigurationError("BACKUP_HOUR must be an hour of the day, 0 to 23")
    # Often, and cheap: the job reads from the database whether tonight's backup is due.
    every(take_nightly_backup, seconds=app.config["BACKUP_CHECK_SECONDS"], long=True)
