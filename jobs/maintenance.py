"""Database upkeep that nobody should have to remember."""

from __future__ import annotations

from datetime import timedelta

from flask import Flask, current_app
from sqlalchemy import delete

from portal.accounts.sessions import purge_expired_sessions
from portal.clock import utcnow
from portal.database import refresh_planner_statistics
from portal.extensions import db
from portal.fhir.limits import purge_expired_fhir_rows
from portal.models import PasswordReset, SignInAttempt
from portal.referrals.drafts import delete_expired_drafts


def refresh_statistics() -> None:
    refresh_planner_statistics(db.engine)


def purge_sessions() -> None:
    """Delete expired sessions (each audited), a batch per transaction; and the FHIR
    door's expired tokens, used assertions and past rate windows."""
    while purge_expired_sessions(batch_size=500):
        db.session.commit()
    purge_expired_fhir_rows()
    db.session.commit()


def purge_expired_drafts() -> None:
    """Delete referral drafts not saved for DRAFT_DAYS (each audited), a batch per
    transaction."""
    while delete_expired_drafts(batch_size=500):
        db.session.commit()
    db.session.commit()


def purge_sign_in_history() -> None:
    """Forget sign-in attempts older than the familiar-address memory, and reset links
    a day after they stopped working (the audit log keeps what happened)."""
    now = utcnow()
    keep_days = current_app.config["SIGN_IN_FAMILIAR_DAYS"] + 1
    db.session.execute(
        delete(SignInAttempt).where(SignInAttempt.at < now - timedelta(days=keep_days))
    )
    db.session.execute(
        delete(PasswordReset).where(PasswordReset.expires_at < now - timedelta(days=1))
    )
    db.session.commit()


def register(every, _app: Flask) -> None:
    every(refresh_statistics, seconds=6 * 3600)
    every(purge_sessions, seconds=600)
    every(purge_expired_drafts, seconds=3600)
    every(purge_sign_in_history, seconds=24 * 3600)
