"""SMART Backend Services authorisation: POST /auth/token and
/.well-known/smart-configuration.

A client gets a short-lived bearer token with the OAuth 2.0 client_credentials grant,
authenticating either with a signed JWT (private_key_jwt, RFC 7523: RS384 or ES384,
checked against the public keys an admin registered, or fetched from its JWKS URL) or
with its client secret (HTTP Basic or in the form). The token endpoint is OAuth, not
FHIR: its refusals are RFC 6749 section 5.2 errors ({"error", "error_description"}),
not OperationOutcomes. Every request, granted or refused, is audited (never a secret
or an assertion), and failed client authentication is slowed down like a wrong
password (portal/accounts/throttling.py).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import threading
import time
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

import jwt
from flask import Response, current_app, request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import HTTPException

from portal.accounts.passwords import verify_password
from portal.accounts.throttling import record_attempt, wait_before_attempt
from portal.auditing import record_audit
from portal.clock import utcnow
from portal.extensions import db
from portal.fhir import auth_bp
from portal.fhir.clients import issue_token
from portal.fhir.registry import CLIENT_EMAIL_DOMAIN
from portal.models import FHIR_SCOPES, AttemptKind, FhirAssertion, FhirClient

ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
SIGNING_ALGORITHMS = ("RS384", "ES384")
# SMART Backend Services: an assertion's exp is at most five minutes ahead.
MAX_ASSERTION_SECONDS = 300
# Clocks differ a little between the EHR and us.
CLOCK_SKEW_SECONDS = 30
# A token request is a few form fields and one JWT: anything larger is not one.
MAX_BODY_BYTES = 16 * 1024
MAX_ASSERTION_LENGTH = 8 * 1024
MAX_SECRET_LENGTH = 200
MAX_SCOPE_LENGTH = 1000
MAX_JTI_LENGTH = 255
# Client ids are secrets.token_urlsafe() values (portal/fhir/registry.py).
CLIENT_ID_PATTERN = re.compile(r"[A-Za-z0-9_-]{1,64}")
# A printable jti without control characters (stored in fhir_assertion.jti).
JTI_PATTERN = re.compile(r"[\x21-\x7e]{1,255}")
# A client's JWKS URL: fetched with a short timeout, at most this much, and kept for a
# while per process (a key rotation shows after JWKS_CACHE_SECONDS, or at once when an
# assertion names a kid we do not have).
JWKS_FETCH_TIMEOUT_SECONDS = 5
JWKS_MAX_BYTES = 64 * 1024
JWKS_CACHE_SECONDS = 300
JWKS_REFETCH_AFTER_SECONDS = 10

# url -> (fetched at, the client's credential_version then, the JWKS). A version moved
# on means an admin replaced the keys, in whichever worker: the URL is fetched again.
_jwks_cache: dict[str, tuple[float, int, dict[str, Any]]] = {}
_jwks_lock = threading.Lock()


class OAuthError(Exception):
    """A token request refused with an RFC 6749 error code."""

    def __init__(
        self,
        error: str,
        description: str,
        status: int = 400,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(description)
        self.error, self.description, self.status = error, description, status
        self.headers = headers or {}


def oauth_response(body: dict[str, Any], status: int, headers: dict[str, str] | None = None):
    response = Response(
        json.dumps(body, separators=(",", ":")), status=status, mimetype="application/json"
    )
    response.headers.update(headers or {})
    response.headers["Cache-Control"] = "no-store"
    response.headers["Pragma"] = "no-cache"
    return response


def oauth_error_response(error: OAuthError) -> Response:
    return oauth_response(
        {"error": error.error, "error_description": error.description},
        error.status,
        error.headers,
    )


auth_bp.register_error_handler(OAuthError, oauth_error_response)


def oauth_http_error(error: HTTPException) -> Response:
    """Werkzeug's errors on the token endpoint (a wrong method, a body too large) as
    OAuth errors."""
    status = error.code or 500
    headers = {}
    if status == 405 and getattr(error, "valid_methods", None):
        headers["Allow"] = ", ".join(error.valid_methods)
    if status >= 500:
        return oauth_error_response(
            OAuthError("server_error", "The server could not process the request.", status)
        )
    return oauth_error_response(
        OAuthError("invalid_request", error.description or error.name, status, headers)
    )


def token_endpoint_url() -> str:
    """The token endpoint's absolute URL, from PORTAL_BASE_URL (what an assertion's aud
    names and what the CapabilityStatement and smart-configuration publish)."""
    from portal.notifications.outbox import portal_url  # noqa: PLC0415 - avoids a cycle

    return portal_url("fhir_auth.token")


@auth_bp.get("/.well-known/smart-configuration")
def smart_configuration():
    """What a SMART Backend Services client needs to know to get a token."""
    body = {
        "token_endpoint": token_endpoint_url(),
        "token_endpoint_auth_methods_supported": [
            "private_key_jwt",
            "client_secret_basic",
            "client_secret_post",
        ],
        "token_endpoint_auth_signing_alg_values_supported": list(SIGNING_ALGORITHMS),
        "grant_types_supported": ["client_credentials"],
        "scopes_supported": list(FHIR_SCOPES),
        "capabilities": ["client-confidential-asymmetric", "client-confidential-symmetric"],
    }
    response = current_app.response_class(
        json.dumps(body, separators=(",", ":")), mimetype="application/json"
    )
    response.headers["Cache-Control"] = "public, max-age=3600"
    return response


# --- The token endpoint ------------------------------------------------------------


@auth_bp.post("/auth/token")
def token():
    """Exchange client credentials for a bearer token (client_credentials grant)."""
    request.max_content_length = MAX_BODY_BYTES
    audit: dict[str, Any] = {"method": None, "client": None}
    client: FhirClient | None = None
    try:
        form = _token_form()
        if form.get("grant_type") != "client_credentials":
            raise OAuthError(
                "unsupported_grant_type" if form.get("grant_type") else "invalid_request",
                "Use grant_type=client_credentials.",
            )
        client = _authenticated_client(form, audit)
        granted = _granted_scopes(client, form.get("scope", ""))
    except OAuthError as refusal:
        if refusal.status == 401 and audit["method"] == "client_secret_basic":
            # RFC 6749 section 5.2: a refused Authorization header is answered in kind.
            refusal.headers.setdefault("WWW-Authenticate", 'Basic realm="token"')
        db.session.rollback()
        record_audit(
            "fhir.token_refused",
            actor=client.user if client else None,
            target_type="fhir_client" if client else None,
            target_id=client.id if client else None,
            error=refusal.error,
            **audit,
        )
        db.session.commit()
        raise
    access_token, lifetime = issue_token(client, granted)
    record_audit(
        "fhir.token_issued",
        actor=client.user,
        target_type="fhir_client",
        target_id=client.id,
        scopes=" ".join(granted),
        partner_id=client.partner_id,
        **audit,
    )
    db.session.commit()
    return oauth_response(
        {
            "access_token": access_token,
            "token_type": "bearer",
            "expires_in": lifetime,
            "scope": " ".join(granted),
        },
        200,
    )


def _token_form() -> dict[str, str]:
    """The form's fields, each sent once (RFC 6749 section 3.2), as plain strings."""
    if request.mimetype != "application/x-www-form-urlencoded":
        raise OAuthError(
            "invalid_request", "Send the request as application/x-www-form-urlencoded."
        )
    form: dict[str, str] = {}
    for name, values in request.form.lists():
        if len(values) > 1:
            raise OAuthError("invalid_request", "Send each parameter once.")
        form[name] = values[0]
    return form


def _authenticated_client(form: dict[str, str], audit: dict[str, Any]) -> FhirClient:
    """The client the request authenticates as, by signed assertion or secret; refused
    (and counted towards the client's and the address's throttling) when it does not."""
    basic = _basic_credentials()
    assertion = form.get("client_assertion")
    if assertion is not None or form.get("client_assertion_type") is not None:
        if basic or "client_secret" in form:
            raise OAuthError("invalid_request", "Authenticate the client one way only.")
        if form.get("client_assertion_type") != ASSERTION_TYPE:
            raise OAuthError("invalid_request", f"Use client_assertion_type={ASSERTION_TYPE}.")
        audit["method"] = "private_key_jwt"
        client_id = _assertion_issuer(assertion or "")
        if form.get("client_id") not in (None, client_id):
            raise OAuthError("invalid_client", "client_id differs from the assertion's iss.")
        return _checked(client_id, audit, lambda client: _check_assertion(client, assertion))
    if basic:
        if "client_secret" in form:
            raise OAuthError("invalid_request", "Authenticate the client one way only.")
        audit["method"] = "client_secret_basic"
        client_id, secret = basic
    elif "client_secret" in form:
        audit["method"] = "client_secret_post"
        client_id, secret = form.get("client_id", ""), form["client_secret"]
    else:
        raise OAuthError(
            "invalid_client",
            "Authenticate the client: a client_assertion (private_key_jwt) or its secret.",
            401,
            {"WWW-Authenticate": 'Basic realm="token"'},
        )
    return _checked(client_id, audit, lambda client: _check_secret(client, secret))


def _basic_credentials() -> tuple[str, str] | None:
    header = request.headers.get("Authorization", "")
    scheme, _, encoded = header.partition(" ")
    if not header:
        return None
    if scheme.lower() != "basic" or len(encoded) > 1000:
        raise OAuthError("invalid_request", "Use HTTP Basic authentication, or none.")
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        raise OAuthError("invalid_client", "The Basic credentials are not base64.", 401) from None
    client_id, colon, secret = decoded.partition(":")
    if not colon:
        raise OAuthError("invalid_client", "Send Basic credentials as client_id:secret.", 401)
    # RFC 6749 section 2.3.1: both are form-urlencoded before base64.
    return unquote(client_id.replace("+", " ")), unquote(secret.replace("+", " "))


def _client_key(client_id: str) -> str:
    """What throttling counts attempts under: the client's user row's address."""
    return f"{client_id.lower()}@{CLIENT_EMAIL_DOMAIN}"


def _checked(client_id: str, audit: dict[str, Any], check) -> FhirClient:
    """Find the client and run `check` on it, throttled and counted like a sign-in."""
    if not CLIENT_ID_PATTERN.fullmatch(client_id or ""):
        raise OAuthError("invalid_client", "Unknown client_id.", 401)
    audit["client"] = client_id
    address = (request.remote_addr or "")[:64]
    wait = wait_before_attempt(AttemptKind.PASSWORD, _client_key(client_id), address)
    if wait:
        raise OAuthError(
            "invalid_client",
            f"Too many failed attempts: wait {wait.seconds} seconds.",
            429,
            {"Retry-After": str(wait.seconds)},
        )
    client = db.session.scalar(select(FhirClient).where(FhirClient.client_id == client_id))
    try:
        if client is None:
            # As slow as a wrong secret, so an unknown id cannot be told apart by time.
            verify_password(None, "")
            raise OAuthError("invalid_client", "Unknown client_id.", 401)
        if client.revoked_at is not None:
            raise OAuthError("invalid_client", "This client was revoked.", 401)
        check(client)
    except OAuthError as refusal:
        if refusal.error in ("invalid_client", "invalid_grant"):
            db.session.rollback()
            record_attempt(AttemptKind.PASSWORD, _client_key(client_id), address, succeeded=False)
            db.session.commit()
        raise
    if not client.partner.active:
        # After the credential was checked, and not counted as a failure: an EHR that
        # kept asking while its office was deactivated is not made to wait after.
        raise OAuthError(
            "invalid_client", "This client's office is deactivated in the portal.", 401
        )
    record_attempt(AttemptKind.PASSWORD, _client_key(client_id), address, succeeded=True)
    return client


def _check_secret(client: FhirClient, secret: str) -> None:
    if client.secret_hash is None:
        verify_password(None, "")
        raise OAuthError("invalid_client", "This client has no secret: use private_key_jwt.", 401)
    if len(secret) > MAX_SECRET_LENGTH or not verify_password(client.secret_hash, secret)[0]:
        raise OAuthError("invalid_client", "The client secret is not right.", 401)


# --- Signed assertions (private_key_jwt) --------------------------------------------


def _assertion_issuer(assertion: str) -> str:
    """The assertion's iss, read before its signature is checked (to find its keys)."""
    if not assertion or len(assertion) > MAX_ASSERTION_LENGTH:
        raise OAuthError("invalid_client", "client_assertion is missing or too long.", 401)
    try:
        claims = jwt.decode(assertion, options={"verify_signature": False})
    except jwt.InvalidTokenError:
        raise OAuthError("invalid_client", "client_assertion is not a JWT.", 401) from None
    issuer = claims.get("iss")
    if not isinstance(issuer, str):
        raise OAuthError("invalid_client", "The assertion has no iss (the client_id).", 401)
    return issuer


def _check_assertion(client: FhirClient, assertion: str) -> None:
    """The assertion is signed by one of the client's keys, addressed to us, short-lived
    and never seen before (its jti is kept until it expires)."""
    try:
        header = jwt.get_unverified_header(assertion)
    except jwt.InvalidTokenError:
        raise OAuthError("invalid_client", "client_assertion is not a JWT.", 401) from None
    algorithm, kid = header.get("alg"), header.get("kid")
    if algorithm not in SIGNING_ALGORITHMS:
        raise OAuthError("invalid_client", "Sign the assertion with RS384 or ES384.", 401)
    key = _signing_key(client, kid if isinstance(kid, str) else None, algorithm)
    now = utcnow()
    try:
        claims = jwt.decode(
            assertion,
            key=key,
            algorithms=[algorithm],
            # Only the published URL: the Host header is the caller's to choose.
            audience=token_endpoint_url(),
            issuer=client.client_id,
            leeway=CLOCK_SKEW_SECONDS,
            options={"require": ["iss", "sub", "aud", "exp", "jti"]},
        )
    except jwt.ExpiredSignatureError:
        raise OAuthError("invalid_client", "The assertion has expired.", 401) from None
    except jwt.InvalidAudienceError:
        raise OAuthError(
            "invalid_client", f"The assertion's aud must be {token_endpoint_url()}.", 401
        ) from None
    except jwt.InvalidSignatureError:
        raise OAuthError("invalid_client", "The assertion's signature is not valid.", 401) from None
    except jwt.MissingRequiredClaimError as missing:
        raise OAuthError(
            "invalid_client", f"The assertion has no {missing.claim} claim.", 401
        ) from None
    except (jwt.PyJWTError, ValueError, TypeError, OverflowError):
        raise OAuthError("invalid_client", "The assertion is not valid.", 401) from None
    if claims.get("sub") != client.client_id:
        raise OAuthError("invalid_client", "The assertion's sub must be the client_id.", 401)
    expires = claims["exp"]
    # Compared, not subtracted: an int too large for a float compares exactly.
    latest = now.timestamp() + MAX_ASSERTION_SECONDS + CLOCK_SKEW_SECONDS
    if not isinstance(expires, int | float) or isinstance(expires, bool) or not expires <= latest:
        raise OAuthError(
            "invalid_client", "The assertion's exp must be at most five minutes ahead.", 401
        )
    jti = claims["jti"]
    if not isinstance(jti, str) or not JTI_PATTERN.fullmatch(jti):
        raise OAuthError("invalid_client", "The assertion's jti is not valid.", 401)
    _spend_jti(client, jti, datetime.fromtimestamp(expires, UTC))


def _spend_jti(client: FhirClient, jti: str, expires_at: datetime) -> None:
    """Remember the jti until the assertion expires; a second use is refused."""
    seen = db.session.scalar(
        select(FhirAssertion.id).where(
            FhirAssertion.client_id == client.id, FhirAssertion.jti == jti
        )
    )
    if seen is None:
        try:
            with db.session.begin_nested():
                db.session.add(
                    FhirAssertion(
                        client_id=client.id,
                        jti=jti,
                        expires_at=expires_at + timedelta(seconds=CLOCK_SKEW_SECONDS),
                    )
                )
        except IntegrityError:  # the same assertion, sent twice at once
            seen = True
    if seen is not None:
        raise OAuthError("invalid_grant", "This assertion (its jti) was already used.")


def _signing_key(client: FhirClient, kid: str | None, algorithm: str):
    """The public key the assertion names (by kid; the only key of its type when the
    JWKS has one and no kid is sent)."""
    if client.jwks is None and not client.jwks_url:
        raise OAuthError(
            "invalid_client", "This client has no public keys: use its client secret.", 401
        )
    keys = _matching_keys(_client_jwks(client), kid, algorithm)
    if not keys and client.jwks_url and kid is not None:
        keys = _matching_keys(_client_jwks(client, refresh=True), kid, algorithm)
    if len(keys) != 1:
        raise OAuthError(
            "invalid_client",
            "No registered key matches the assertion's kid and alg."
            if keys == []
            else "Name the signing key with kid.",
            401,
        )
    return keys[0]


def _matching_keys(jwks: dict[str, Any], kid: str | None, algorithm: str) -> list:
    kty = "RSA" if algorithm == "RS384" else "EC"
    found = []
    keys = jwks.get("keys") if isinstance(jwks, dict) else None
    for entry in keys if isinstance(keys, list) else []:
        if not isinstance(entry, dict) or entry.get("kty") != kty:
            continue
        if kid is not None and entry.get("kid") != kid:
            continue
        if entry.get("alg") not in (None, algorithm):
            continue
        if kty == "EC" and entry.get("crv") != "P-384":
            continue
        try:
            found.append(jwt.PyJWK(entry, algorithm=algorithm).key)
        except (jwt.PyJWTError, ValueError, TypeError, KeyError):  # not a key we can use
            continue
    return found


def _client_jwks(client: FhirClient, *, refresh: bool = False) -> dict[str, Any]:
    """The client's registered JWKS, or the one at its URL (cached per process)."""
    if client.jwks is not None:
        return client.jwks
    url = client.jwks_url
    with _jwks_lock:
        cached = _jwks_cache.get(url)
    if cached is not None and cached[1] == client.credential_version:
        age = time.monotonic() - cached[0]
        if age < (JWKS_REFETCH_AFTER_SECONDS if refresh else JWKS_CACHE_SECONDS):
            return cached[2]
    jwks = fetch_jwks(url)
    with _jwks_lock:
        _jwks_cache[url] = (time.monotonic(), client.credential_version, jwks)
    return jwks


def fetch_jwks(url: str) -> dict[str, Any]:
    """The JWKS document at `url`, or an invalid_client refusal."""
    try:
        if urlsplit(url).scheme not in ("https", "http"):  # never file: or ftp:
            raise ValueError("not http(s)")
        request_for_keys = urllib.request.Request(  # noqa: S310 - http(s) only, checked above
            url, headers={"Accept": "application/json"}
        )
        with urllib.request.urlopen(  # noqa: S310 - http(s) only, checked above
            request_for_keys, timeout=JWKS_FETCH_TIMEOUT_SECONDS
        ) as answer:
            body = answer.read(JWKS_MAX_BYTES + 1)
        if len(body) > JWKS_MAX_BYTES:
            raise ValueError("too large")
        jwks = json.loads(body)
        if not isinstance(jwks, dict):
            raise ValueError("not an object")
    except (OSError, ValueError):
        raise OAuthError(
            "invalid_client", "The client's JWKS URL could not be read.", 401
        ) from None
    return jwks


def forget_jwks(url: str | None) -> None:
    """Drop a cached JWKS (an admin replaced the client's keys)."""
    if url:
        with _jwks_lock:
            _jwks_cache.pop(url, None)


# --- Scopes ---------------------------------------------------------------------------


def _granted_scopes(client: FhirClient, requested: str) -> list[str]:
    """The requested scopes the client holds (in FHIR_SCOPES order); none is a refusal."""
    if len(requested) > MAX_SCOPE_LENGTH:
        raise OAuthError("invalid_scope", "The scope parameter is too long.")
    wanted = set(requested.split())
    if not wanted:
        raise OAuthError(
            "invalid_scope", "Ask for scopes, e.g. scope=system/Task.rs system/ServiceRequest.c."
        )
    granted = [scope for scope in FHIR_SCOPES if scope in wanted and scope in client.scope_set]
    if not granted:
        raise OAuthError("invalid_scope", "None of the requested scopes is granted to this client.")
    return granted
