"""Who is calling: the bearer token, its client and scopes, and the `fhir_api` decorator
every FHIR endpoint wears (token, scope, rate limit, audit).

Tokens are random, about five minutes long (FHIR_TOKEN_SECONDS), and stored as their
SHA-256 like web sessions; a revoked client's tokens stop working on the next call.
The client acts as its own user row (portal/models/fhir.py), so the views call the same
services the web pages do, with `g.fhir_client.user` as the actor.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import timedelta
from functools import wraps
from typing import Any

from flask import current_app, g, request
from sqlalchemy import exists, select
from werkzeug.exceptions import HTTPException

from portal.accounts.sessions import token_digest
from portal.auditing import record_audit
from portal.clock import utcnow
from portal.extensions import db
from portal.fhir.limits import check_rate
from portal.fhir.outcomes import FhirError
from portal.models import FhirAccessToken, FhirClient, Partner

# A bearer token longer than this is not one of ours: refused without a lookup.
MAX_TOKEN_LENGTH = 100


def issue_token(client: FhirClient, scopes: list[str]) -> tuple[str, int]:
    """A new access token for `client` with `scopes` (the caller commits); the token and
    its lifetime in seconds."""
    token = secrets.token_urlsafe(32)
    lifetime = int(current_app.config["FHIR_TOKEN_SECONDS"])
    db.session.add(
        FhirAccessToken(
            token_hash=token_digest(token),
            client=client,
            scopes=" ".join(scopes),
            expires_at=utcnow() + timedelta(seconds=lifetime),
            credential_version=client.credential_version,  # as its credential was checked
        )
    )
    return token, lifetime


def _unauthorised(message: str, error: str = "invalid_token") -> FhirError:
    return FhirError(
        401, message, code="login", headers={"WWW-Authenticate": f'Bearer error="{error}"'}
    )


def authenticate() -> tuple[FhirClient, frozenset[str]]:
    """The client and scopes of this request's bearer token, or a 401."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise _unauthorised(
            "Send an access token as 'Authorization: Bearer <token>' (get one from "
            "POST /auth/token).",
            "invalid_request",
        )
    token = token.strip()
    if len(token) > MAX_TOKEN_LENGTH:
        raise _unauthorised("The access token is not one this server issued.")
    found = db.session.execute(
        select(FhirAccessToken)
        .join(FhirAccessToken.client)
        .where(
            FhirAccessToken.token_hash == token_digest(token),
            FhirAccessToken.expires_at > utcnow(),
            FhirClient.revoked_at.is_(None),
            FhirAccessToken.credential_version == FhirClient.credential_version,
            # Deactivating the office stops its tokens at once, as it ends its sessions.
            exists().where(Partner.id == FhirClient.partner_id, Partner.active.is_(True)),
        )
    ).scalar_one_or_none()
    if found is None:
        raise _unauthorised(
            "The access token is unknown, expired or revoked: get a new one from /auth/token."
        )
    return found.client, frozenset(found.scopes.split())


def fhir_api(*scopes: str) -> Callable:
    """The view needs a valid token holding every one of `scopes`; each call (answered
    or refused) is audited under the client's user and partner, as a web view is."""

    def decorator(view: Callable) -> Callable:
        @wraps(view)
        def wrapped(*args: Any, **kwargs: Any) -> Any:
            client, granted = authenticate()
            g.fhir_client = client
            g.fhir_scopes = granted  # for a view whose scope depends on the body
            try:
                missing = [scope for scope in scopes if scope not in granted]
                if missing:
                    raise FhirError(
                        403,
                        f"This call needs the scope {' and '.join(missing)}; ask for it "
                        "at /auth/token (an admin grants a client its scopes).",
                    )
                check_rate(client)
                response = current_app.make_response(view(*args, **kwargs))
            except (FhirError, HTTPException) as refusal:
                # Ours, or werkzeug's (a body past MAX_CONTENT_LENGTH, a 404 from a
                # shared helper): audited either way, with nothing the view half-wrote.
                db.session.rollback()
                _audit(client, _refusal_status(refusal))
                db.session.commit()
                raise
            _audit(client, response.status_code)
            db.session.commit()
            return response

        return wrapped

    return decorator


def _refusal_status(refusal: FhirError | HTTPException) -> int:
    """The status the client gets for a refusal (an abort() may carry its own response)."""
    if isinstance(refusal, FhirError):
        return refusal.status
    if refusal.response is not None:
        return refusal.response.status_code
    return refusal.code or 500


def _audit(client: FhirClient, status: int) -> None:
    """One audit row per call: the endpoint, what it was about (the view sets
    g.fhir_audit_target to a referral or a (type, id) pair), the answer's status."""
    target = g.pop("fhir_audit_target", None)
    referral, target_type, target_id = None, None, None
    if isinstance(target, tuple):
        target_type, target_id = target
    elif target is not None:
        referral = target
    record_audit(
        f"fhir.{request.endpoint.rsplit('.', 1)[-1] if request.endpoint else 'unknown'}",
        actor=client.user,
        referral=referral,
        target_type=target_type,
        target_id=target_id,
        client=client.client_id,
        partner_id=client.partner_id,
        status=status,
    )
