"""Calls per client per minute (FHIR_CALLS_PER_MINUTE), counted in the database so that
every worker shares one limit; past it, 429 with Retry-After. And the upkeep of the
FHIR door's short-lived rows (rate windows, used assertions, expired tokens)."""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlalchemy import delete

from portal.clock import utcnow
from portal.database import commit_keeping_loaded, upsert_insert
from portal.extensions import db
from portal.fhir.outcomes import FhirError
from portal.models import FhirAccessToken, FhirAssertion, FhirClient, FhirRateWindow

# Windows older than this are of no use to anyone (only the current minute counts).
KEEP_WINDOWS = timedelta(minutes=10)


def check_rate(client: FhirClient) -> None:
    """Count this call in the client's current minute (one upsert) and refuse it with a
    429 past FHIR_CALLS_PER_MINUTE.

    The count is committed at once: a call the view then refuses (a 404, a 422) rolls
    its own work back, yet it still counts towards the limit. Nothing else is pending
    here (the decorator calls this before the view runs), and what the token check
    loaded is kept rather than read again."""
    now = utcnow()
    window = now.replace(second=0, microsecond=0)
    statement = (
        upsert_insert(db.session, FhirRateWindow)
        .values(client_id=client.id, window_start=window, count=1)
        .on_conflict_do_update(
            index_elements=[FhirRateWindow.client_id, FhirRateWindow.window_start],
            set_={"count": FhirRateWindow.count + 1},
        )
        .returning(FhirRateWindow.count)
    )
    count = db.session.execute(statement).scalar_one()
    commit_keeping_loaded()  # the client and its user, loaded by the token check, stay
    limit = int(current_app.config["FHIR_CALLS_PER_MINUTE"])
    if count > limit:
        retry_after = max(1, int((window + timedelta(minutes=1) - now).total_seconds() + 0.999))
        raise FhirError(
            429,
            f"More than {limit} calls this minute: wait {retry_after} seconds and try again.",
            headers={"Retry-After": str(retry_after)},
        )


def purge_expired_fhir_rows() -> int:
    """Delete past rate windows, used assertions past their expiry (a replay of one is
    refused by its exp by then) and expired access tokens; the caller commits. How many
    rows went."""
    now = utcnow()
    deleted = 0
    for statement in (
        delete(FhirRateWindow).where(FhirRateWindow.window_start < now - KEEP_WINDOWS),
        delete(FhirAssertion).where(FhirAssertion.expires_at < now),
        delete(FhirAccessToken).where(FhirAccessToken.expires_at < now),
    ):
        deleted += db.session.execute(
            statement.execution_options(synchronize_session=False)
        ).rowcount
    return deleted
