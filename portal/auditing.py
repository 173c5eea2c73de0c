"""Writing to the append-only audit log."""

from __future__ import annotations

from typing import Any

from flask import has_request_context, request

from portal.extensions import db
from portal.models import AuditEntry, Referral, User


def record_audit(
    action: str,
    *,
    actor: User | None,
    referral: Referral | None = None,
    target_type: str | None = None,
    target_id: str | int | None = None,
    **detail: Any,
) -> AuditEntry:
    """Add an audit entry to the current transaction (the caller commits).

    Pass ids and codes in `detail`, never patient data.
    """
    if referral is not None:
        target_type, target_id = "referral", referral.reference
    entry = AuditEntry(
        actor_id=actor.id if actor is not None else None,
        action=action,
        target_type=target_type,
        target_id=str(target_id) if target_id is not None else None,
        address=request.remote_addr if has_request_context() else None,
        detail=detail,
    )
    db.session.add(entry)
    return entry
