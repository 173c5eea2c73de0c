"""Registering a partner's EHR as a FHIR client, rotating its credentials, revoking it.

A client acts as a user row of its own: role partner, the client's partner, disabled
and without a password, so it can never sign in to the web pages (nor be invited or
reset), while the referrals, events and audit entries it causes name it like a person.

Public keys are checked when registered: a JWKS of RSA keys of at least 2048 bits or
EC P-384 keys, public parts only, each named by a `kid`. Every change is audited; a
change of credentials (a new secret, new keys) or a revocation ends the client's live
tokens at once.
"""

from __future__ import annotations

import json
import re
import secrets
from typing import Any
from urllib.parse import urlsplit

import jwt
from flask_babel import gettext
from sqlalchemy import delete, exists, select

from portal.accounts.passwords import hash_password
from portal.auditing import record_audit
from portal.clock import utcnow
from portal.extensions import db
from portal.models import FHIR_SCOPES, FhirAccessToken, FhirClient, Partner, Role, User

# The user row's address: never a mailbox (".invalid" is reserved, RFC 2606).
CLIENT_EMAIL_DOMAIN = "fhir-clients.invalid"
# A JWKS an admin pastes: a few keys, a few kilobytes each at most.
MAX_JWKS_CHARACTERS = 20_000
MAX_KEYS = 10
MIN_RSA_BITS = 2048
KID_PATTERN = re.compile(r"[\x21-\x7e]{1,100}")
# Members that only a private (or symmetric) key has (RFC 7518 section 6).
PRIVATE_MEMBERS = frozenset({"d", "p", "q", "dp", "dq", "qi", "oth", "k"})
ALGORITHM_FOR = {"RSA": "RS384", "EC": "ES384"}


class KeysRefused(ValueError):
    """The keys cannot be registered; the message says why (for the admin)."""


def register_client(
    partner: Partner,
    name: str,
    scopes: list[str],
    *,
    created_by: User | None,
    jwks: dict[str, Any] | None = None,
    jwks_url: str | None = None,
    with_secret: bool = False,
    known_id_and_secret: tuple[str, str] | None = None,
) -> tuple[FhirClient, str | None]:
    """A new client for `partner` (the caller commits) and its secret when asked for one
    (shown once: only its hash is kept). `known_id_and_secret`: the demo EHR's, printed
    with the demo sign-ins; every real client gets random ones."""
    client_id = known_id_and_secret[0] if known_id_and_secret else secrets.token_urlsafe(18)
    user = User(
        email=f"{client_id.lower()}@{CLIENT_EMAIL_DOMAIN}",
        full_name=name,
        role=Role.PARTNER,
        partner=partner,
        password_hash=None,
        enabled=False,
    )
    secret = secrets.token_urlsafe(32) if with_secret else None
    if known_id_and_secret:
        secret = known_id_and_secret[1]
    client = FhirClient(
        client_id=client_id,
        name=name,
        partner=partner,
        user=user,
        secret_hash=hash_password(secret) if secret else None,
        jwks=jwks,
        jwks_url=jwks_url,
        scopes=" ".join(scope for scope in FHIR_SCOPES if scope in scopes),
        created_by_id=created_by.id if created_by else None,
    )
    db.session.add_all([user, client])
    db.session.flush()
    record_audit(
        "fhir_client.registered",
        actor=created_by,
        target_type="fhir_client",
        target_id=client.id,
        client=client_id,
        partner_id=partner.id,
        scopes=client.scopes,
        secret=secret is not None,
        keys=_key_source(client),
    )
    return client, secret


def rotate_secret(client: FhirClient, *, by: User | None) -> str:
    """A new secret (shown once); the old one and every live token stop now."""
    secret = secrets.token_urlsafe(32)
    client.secret_hash = hash_password(secret)
    client.rotated_at = utcnow()
    _credentials_changed(client, "fhir_client.secret_rotated", by)
    return secret


def replace_keys(
    client: FhirClient,
    *,
    jwks: dict[str, Any] | None,
    jwks_url: str | None,
    by: User | None,
) -> None:
    """Register other public keys (a JWKS, a JWKS URL, or none); live tokens stop."""
    from portal.fhir.auth import forget_jwks  # noqa: PLC0415 - auth imports this module

    forget_jwks(client.jwks_url)
    client.jwks, client.jwks_url, client.rotated_at = jwks, jwks_url, utcnow()
    _credentials_changed(
        client,
        "fhir_client.keys_replaced",
        by,
        keys=_key_source(client),
        kids=[key.get("kid") for key in (jwks or {}).get("keys", [])],
    )


def revoke_client(client: FhirClient, *, by: User | None = None) -> None:
    """Its tokens stop working at the next call (the caller commits)."""
    if client.revoked_at is not None:
        return
    client.revoked_at = utcnow()
    _credentials_changed(client, "fhir_client.revoked", by)


def _credentials_changed(client: FhirClient, action: str, by: User | None, **detail: Any) -> None:
    """After a new secret, new keys or a revocation: the client's live tokens end at
    once, and `action` is audited (never with a secret). A token request that checked
    the old credential and has not stored its token yet stores one that is refused."""
    client.credential_version += 1
    db.session.execute(
        delete(FhirAccessToken)
        .where(FhirAccessToken.client_id == client.id)
        .execution_options(synchronize_session=False)
    )
    record_audit(
        action,
        actor=by,
        target_type="fhir_client",
        target_id=client.id,
        client=client.client_id,
        **detail,
    )


def _key_source(client: FhirClient) -> str:
    if client.jwks is not None:
        return "jwks"
    return "jwks_url" if client.jwks_url else "none"


def is_client_user(user: User) -> bool:
    """Whether `user` is the row a FHIR client acts as (never a person: it cannot sign
    in, be invited, reset its password or be enabled)."""
    if user.id is None:
        return False
    return bool(db.session.scalar(select(exists().where(FhirClient.user_id == user.id))))


# --- Checking what an admin registers --------------------------------------------------


def parse_jwks(text: str) -> dict[str, Any]:
    """The JWKS in `text`, checked: public RSA (>= 2048 bits) or EC P-384 signing keys,
    each with a distinct kid. KeysRefused says what is wrong."""
    if len(text) > MAX_JWKS_CHARACTERS:
        raise KeysRefused(gettext("The key set is too long."))
    try:
        document = json.loads(text)
    except (ValueError, RecursionError):
        raise KeysRefused(gettext("This is not JSON: paste the JWKS document.")) from None
    keys = document.get("keys") if isinstance(document, dict) else None
    if not isinstance(keys, list) or not keys:
        raise KeysRefused(gettext("A JWKS is an object with a list of keys under “keys”."))
    if len(keys) > MAX_KEYS:
        raise KeysRefused(gettext("Register at most %(most)d keys.", most=MAX_KEYS))
    kids: set[str] = set()
    checked = []
    for number, key in enumerate(keys, start=1):
        checked.append(_checked_key(key, number, kids))
    return {"keys": checked}


def _checked_key(key: object, number: int, kids: set[str]) -> dict[str, Any]:
    if not isinstance(key, dict):
        raise KeysRefused(gettext("Key %(number)d is not a JSON object.", number=number))
    if PRIVATE_MEMBERS & set(key):
        raise KeysRefused(
            gettext(
                "Key %(number)d holds private key material: register the public key only, "
                "and replace the key pair, as its private part has been shared.",
                number=number,
            )
        )
    kty = key.get("kty")
    algorithm = ALGORITHM_FOR.get(kty) if isinstance(kty, str) else None
    if algorithm is None:
        raise KeysRefused(gettext("Key %(number)d must be an RSA or EC key.", number=number))
    kid = key.get("kid")
    if not isinstance(kid, str) or not KID_PATTERN.fullmatch(kid):
        raise KeysRefused(
            gettext("Key %(number)d needs a kid (up to 100 printable characters).", number=number)
        )
    if kid in kids:
        raise KeysRefused(gettext("Two keys have the kid %(kid)s.", kid=kid))
    kids.add(kid)
    if key.get("alg") not in (None, algorithm) or key.get("use") not in (None, "sig"):
        raise KeysRefused(
            gettext(
                "Key %(number)d must be a signing key for %(algorithm)s.",
                number=number,
                algorithm=algorithm,
            )
        )
    if kty == "EC" and key.get("crv") != "P-384":
        raise KeysRefused(gettext("Key %(number)d must be on the P-384 curve.", number=number))
    try:
        parsed = jwt.PyJWK(key, algorithm=algorithm).key
    except (jwt.PyJWKError, ValueError, TypeError, KeyError, OverflowError):
        raise KeysRefused(gettext("Key %(number)d cannot be read.", number=number)) from None
    if kty == "RSA" and parsed.key_size < MIN_RSA_BITS:
        raise KeysRefused(
            gettext("Key %(number)d is too short: use at least 2048 bits.", number=number)
        )
    # Keep only the members a public key needs: nothing else a client sent is stored.
    members = (
        ("kty", "kid", "alg", "use", "n", "e")
        if kty == "RSA"
        else ("kty", "kid", "alg", "use", "crv", "x", "y")
    )
    return {name: key[name] for name in members if name in key}


def check_jwks_url(url: str) -> str:
    """`url` if it is an https URL with a host; KeysRefused otherwise."""
    try:
        parts = urlsplit(url)
        host = parts.hostname
    except ValueError:
        host = None
    if not host or parts.scheme != "https":
        raise KeysRefused(gettext("Give an https:// address for the key set."))
    return url
