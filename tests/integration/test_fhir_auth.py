"""SMART Backend Services: a partner's EHR gets a short-lived token with a signed JWT
(RS384 or ES384, keys registered or at a JWKS URL) or its client secret, and a FHIR
call with that token works until it expires or the client is revoked."""

from __future__ import annotations

import base64
import json
import threading
import uuid
from contextlib import contextmanager
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from flask import Flask
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from sqlalchemy import func, select, update

from portal.clock import frozen_at, utcnow
from portal.extensions import db
from portal.fhir import auth
from portal.fhir.clients import fhir_api
from portal.fhir.limits import purge_expired_fhir_rows
from portal.fhir.outcomes import FhirError, error_response, fhir_response
from portal.fhir.registry import register_client, revoke_client
from portal.models import (
    AuditEntry,
    FhirAccessToken,
    FhirAssertion,
    FhirClient,
    FhirRateWindow,
    Partner,
)

ALL_READS = "system/Task.rs system/ServiceRequest.rs"
READ_SCOPES = tuple(ALL_READS.split())


@pytest.fixture
def fhir_app(app: Flask) -> Flask:
    """The app with a tiny FHIR endpoint that needs system/Task.rs (the real reads are
    tested with theirs)."""

    @fhir_api("system/Task.rs")
    def probe():
        return fhir_response({"resourceType": "OperationOutcome", "issue": []})

    app.add_url_rule("/fhir/_probe", "fhir_probe", probe)
    app.register_error_handler(FhirError, error_response)
    return app


def rsa_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def ec_key():
    return ec.generate_private_key(ec.SECP384R1())


def public_jwk(private_key, kid: str) -> dict:
    algorithm = RSAAlgorithm if isinstance(private_key, rsa.RSAPrivateKey) else ECAlgorithm
    jwk = algorithm.to_jwk(private_key.public_key(), as_dict=True)
    return {**jwk, "kid": kid}


def make_client(app, desk, *, jwks=None, jwks_url=None, secret=False, scopes=READ_SCOPES):
    with app.app_context():
        partner = db.session.get(Partner, desk.partner_a_id)
        client, client_secret = register_client(
            partner,
            "Alpha EHR",
            scopes,
            created_by=None,
            jwks=jwks,
            jwks_url=jwks_url,
            with_secret=secret,
        )
        db.session.commit()
        return client.client_id, client_secret


def token_url(app) -> str:
    return app.config["PORTAL_BASE_URL"].rstrip("/") + "/auth/token"


def assertion(app, client_id, key, alg, kid, **overrides) -> str:
    now = int(utcnow().timestamp())
    claims = {
        "iss": client_id,
        "sub": client_id,
        "aud": token_url(app),
        "exp": now + 240,
        "jti": str(uuid.uuid4()),
        **overrides,
    }
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key, algorithm=alg, headers={"kid": kid})


def jwt_form(signed: str, scope: str = ALL_READS) -> dict:
    return {
        "grant_type": "client_credentials",
        "scope": scope,
        "client_assertion_type": auth.ASSERTION_TYPE,
        "client_assertion": signed,
    }


def secret_form(client_id: str, secret: str, scope: str = "system/Task.rs") -> dict:
    return {
        "grant_type": "client_credentials",
        "scope": scope,
        "client_id": client_id,
        "client_secret": secret,
    }


def token_by_secret(client, client_id: str, secret: str) -> str:
    response = ask(client, secret_form(client_id, secret))
    assert response.status_code == 200, response.get_json()
    return response.get_json()["access_token"]


def ask(client, data, headers=None):
    return client.post("/auth/token", data=data, headers=headers or {})


def probe(client, token):
    return client.get("/fhir/_probe", headers={"Authorization": f"Bearer {token}"})


def test_smart_configuration_names_the_token_endpoint_and_what_it_takes(app, client):
    response = client.get("/.well-known/smart-configuration")
    assert response.status_code == 200
    body = response.get_json()
    assert body["token_endpoint"] == token_url(app)
    assert body["token_endpoint_auth_signing_alg_values_supported"] == ["RS384", "ES384"]
    assert body["grant_types_supported"] == ["client_credentials"]
    assert "private_key_jwt" in body["token_endpoint_auth_methods_supported"]
    assert "client-confidential-asymmetric" in body["capabilities"]
    assert "system/Task.rs" in body["scopes_supported"]


@pytest.mark.parametrize(("make_key", "alg"), [(rsa_key, "RS384"), (ec_key, "ES384")])
def test_a_signed_jwt_gets_a_token_that_opens_the_fhir_door(fhir_app, desk, client, make_key, alg):
    key = make_key()
    client_id, _ = make_client(fhir_app, desk, jwks={"keys": [public_jwk(key, "k1")]})
    response = ask(client, jwt_form(assertion(fhir_app, client_id, key, alg, "k1")))
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["token_type"] == "bearer"
    assert body["expires_in"] == 300
    assert body["scope"] == ALL_READS
    assert response.headers["Cache-Control"] == "no-store"
    assert probe(client, body["access_token"]).status_code == 200
    with fhir_app.app_context():
        entry = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "fhir.token_issued")
        ).one()
        assert entry.detail["method"] == "private_key_jwt"
        assert entry.detail["client"] == client_id
        assert "client_assertion" not in json.dumps(entry.detail)


def test_the_token_holds_only_the_scopes_both_asked_for_and_granted(fhir_app, desk, client):
    _client_id, _ = make_client(fhir_app, desk, secret=True, scopes=["system/ServiceRequest.rs"])
    client_id, secret = make_client(fhir_app, desk, secret=True)
    response = ask(
        client,
        secret_form(client_id, secret, "system/Task.rs system/ServiceRequest.c launch/patient"),
    )
    assert response.status_code == 200
    assert response.get_json()["scope"] == "system/Task.rs"


def test_a_missing_scope_is_a_403_on_the_call(fhir_app, desk, client):
    client_id, secret = make_client(fhir_app, desk, secret=True)
    response = ask(client, secret_form(client_id, secret, "system/ServiceRequest.rs"))
    assert response.status_code == 200
    answer = probe(client, response.get_json()["access_token"])
    assert answer.status_code == 403
    assert answer.get_json()["resourceType"] == "OperationOutcome"


def test_no_granted_scope_is_invalid_scope(fhir_app, desk, client):
    client_id, secret = make_client(fhir_app, desk, secret=True)
    for scope in ("system/Appointment.rs", "", "user/*.read"):
        response = ask(client, secret_form(client_id, secret, scope))
        assert response.status_code == 400
        assert response.get_json()["error"] == "invalid_scope"


def test_a_jwks_url_is_fetched_and_its_keys_used(fhir_app, desk, client):
    key = ec_key()
    document = json.dumps({"keys": [public_jwk(key, "remote-1")]}).encode()
    fetched = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            fetched.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *_args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    try:
        auth.forget_jwks(url)
        client_id, _ = make_client(fhir_app, desk, jwks_url=url)
        for _ in range(2):
            signed = assertion(fhir_app, client_id, key, "ES384", "remote-1")
            response = ask(client, jwt_form(signed))
            assert response.status_code == 200, response.get_json()
        assert fetched == ["/jwks.json"]  # the second request used the cached copy
        other = ec_key()
        response = ask(client, jwt_form(assertion(fhir_app, client_id, other, "ES384", "k9")))
        assert response.status_code == 401
        assert response.get_json()["error"] == "invalid_client"
    finally:
        server.shutdown()
        server.server_close()
        auth.forget_jwks(url)


@contextmanager
def jwks_served(document: bytes, fetched: list | None = None):
    """A JWKS URL answering `document` (each path asked for added to `fetched`)."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            if fetched is not None:
                fetched.append(self.path)
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(document)))
            self.end_headers()
            self.wfile.write(document)

        def log_message(self, *_args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/jwks.json"
    auth.forget_jwks(url)
    try:
        yield url
    finally:
        server.shutdown()
        server.server_close()
        auth.forget_jwks(url)


@pytest.mark.parametrize(
    "keys",
    [
        None,
        5,
        "keys",
        # A P-384 key whose point is not on the curve.
        [{"kty": "EC", "crv": "P-384", "kid": "k1", "x": "AQ", "y": "AQ"}],
    ],
)
def test_a_jwks_url_serving_no_usable_keys_is_invalid_client(fhir_app, desk, client, keys):
    with jwks_served(json.dumps({"keys": keys}).encode()) as url:
        client_id, _ = make_client(fhir_app, desk, jwks_url=url)
        response = ask(client, jwt_form(assertion(fhir_app, client_id, ec_key(), "ES384", "k1")))
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"


def test_keys_replaced_in_another_worker_are_fetched_again_here(fhir_app, desk, client):
    key, fetched = ec_key(), []
    document = json.dumps({"keys": [public_jwk(key, "k1")]}).encode()
    with jwks_served(document, fetched) as url:
        client_id, _ = make_client(fhir_app, desk, jwks_url=url)
        signed = assertion(fhir_app, client_id, key, "ES384", "k1")
        assert ask(client, jwt_form(signed)).status_code == 200
        # Another worker replaced the keys: its own cache was dropped, not this one's.
        with fhir_app.app_context():
            db.session.execute(
                update(FhirClient)
                .where(FhirClient.client_id == client_id)
                .values(credential_version=FhirClient.credential_version + 1)
            )
            db.session.commit()
        signed = assertion(fhir_app, client_id, key, "ES384", "k1")
        assert ask(client, jwt_form(signed)).status_code == 200
    assert fetched == ["/jwks.json", "/jwks.json"]


def test_an_unreachable_jwks_url_is_invalid_client(fhir_app, desk, client):
    key = ec_key()
    client_id, _ = make_client(fhir_app, desk, jwks_url="http://127.0.0.1:9/nothing")
    response = ask(client, jwt_form(assertion(fhir_app, client_id, key, "ES384", "k1")))
    assert response.status_code == 401
    assert response.get_json()["error"] == "invalid_client"


@pytest.mark.parametrize("how", ["basic", "post"])
def test_a_client_secret_gets_a_token(fhir_app, desk, client, how):
    client_id, secret = make_client(fhir_app, desk, secret=True)
    data = {"grant_type": "client_credentials", "scope": "system/Task.rs"}
    headers = {}
    if how == "basic":
        headers["Authorization"] = "Basic " + base64.b64encode(
            f"{client_id}:{secret}".encode()
        ).decode("ascii")
    else:
        data |= {"client_id": client_id, "client_secret": secret}
    response = ask(client, data, headers)
    assert response.status_code == 200, response.get_json()
    assert probe(client, response.get_json()["access_token"]).status_code == 200
    wrong = dict(data)
    if how == "basic":
        headers["Authorization"] = "Basic " + base64.b64encode(
            f"{client_id}:{secret}x".encode()
        ).decode("ascii")
    else:
        wrong["client_secret"] = secret + "x"
    response = ask(client, wrong, headers)
    assert response.status_code == 401
    if how == "basic":
        assert response.headers["WWW-Authenticate"].startswith("Basic")
    assert response.get_json()["error"] == "invalid_client"
    with fhir_app.app_context():
        refused = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "fhir.token_refused")
        ).one()
        assert secret not in json.dumps(refused.detail)
        assert refused.detail["error"] == "invalid_client"


def _refusal(client, fhir_app, client_id, key, kid="k1", alg="RS384", **claims):
    return ask(client, jwt_form(assertion(fhir_app, client_id, key, alg, kid, **claims)))


def test_bad_assertions_are_refused(fhir_app, desk, client):
    key = rsa_key()
    client_id, _ = make_client(fhir_app, desk, jwks={"keys": [public_jwk(key, "k1")]})
    now = int(utcnow().timestamp())
    cases = {
        "expired": {"exp": now - 120},
        "too long": {"exp": now + 3600},
        "past a float": {"exp": 10**400},
        "no exp": {"exp": None},
        "no jti": {"jti": None},
        "wrong aud": {"aud": "https://elsewhere.example/token"},
        "wrong sub": {"sub": "someone-else"},
    }
    for name, claims in cases.items():
        response = _refusal(client, fhir_app, client_id, key, **claims)
        assert response.status_code == 401, name
        assert response.get_json()["error"] == "invalid_client", name
        assert response.headers["Cache-Control"] == "no-store"
        # A success in between: throttling counts failures since the last success.
        if name in ("no exp", "wrong aud"):
            assert _refusal(client, fhir_app, client_id, key).status_code == 200
    assert _refusal(client, fhir_app, client_id, rsa_key()).status_code == 401  # signature
    assert _refusal(client, fhir_app, client_id, key, kid="k2").status_code == 401  # kid
    # A key of the wrong type for the alg, and alg none.
    assert _refusal(client, fhir_app, client_id, ec_key(), alg="ES384").status_code == 401
    unsigned = jwt.encode(
        {"iss": client_id, "sub": client_id, "aud": token_url(fhir_app), "exp": now + 60},
        None,
        algorithm="none",
    )
    assert ask(client, jwt_form(unsigned)).status_code in (401, 429)


def test_a_replayed_assertion_is_invalid_grant(fhir_app, desk, client):
    key = rsa_key()
    client_id, _ = make_client(fhir_app, desk, jwks={"keys": [public_jwk(key, "k1")]})
    signed = assertion(fhir_app, client_id, key, "RS384", "k1")
    assert ask(client, jwt_form(signed)).status_code == 200
    again = ask(client, jwt_form(signed))
    assert again.status_code == 400
    assert again.get_json()["error"] == "invalid_grant"
    with fhir_app.app_context():
        assert db.session.scalar(select(func.count(FhirAccessToken.id))) == 1


def test_a_revoked_client_gets_no_token_and_its_live_token_stops_at_once(fhir_app, desk, client):
    client_id, secret = make_client(fhir_app, desk, secret=True)
    form = secret_form(client_id, secret)
    token = ask(client, form).get_json()["access_token"]
    assert probe(client, token).status_code == 200
    with fhir_app.app_context():
        revoke_client(db.session.scalar(select(FhirClient).filter_by(client_id=client_id)))
        db.session.commit()
    answer = probe(client, token)
    assert answer.status_code == 401
    assert "Bearer" in answer.headers["WWW-Authenticate"]
    refused = ask(client, form)
    assert refused.status_code == 401
    assert refused.get_json()["error"] == "invalid_client"


def test_a_token_past_its_lifetime_is_refused(fhir_app, desk, client):
    client_id, secret = make_client(fhir_app, desk, secret=True)
    token = token_by_secret(client, client_id, secret)
    with frozen_at(utcnow() + timedelta(seconds=299)):
        assert probe(client, token).status_code == 200
    with frozen_at(utcnow() + timedelta(seconds=301)):
        assert probe(client, token).status_code == 401


def test_repeated_wrong_secrets_are_slowed_down(fhir_app, desk, client):
    client_id, secret = make_client(fhir_app, desk, secret=True)
    form = secret_form(client_id, "wrong")
    statuses = [ask(client, form).status_code for _ in range(7)]
    assert statuses[:5] == [401] * 5
    assert statuses[-1] == 429
    response = ask(client, form | {"client_secret": secret})
    assert response.status_code == 429  # even the right secret waits
    assert int(response.headers["Retry-After"]) >= 1


def test_past_the_rate_limit_a_call_is_429_with_retry_after(fhir_app, desk, client):
    fhir_app.config["FHIR_CALLS_PER_MINUTE"] = 3
    client_id, secret = make_client(fhir_app, desk, secret=True)
    token = token_by_secret(client, client_id, secret)
    moment = utcnow().replace(second=15, microsecond=0) + timedelta(minutes=1)
    with frozen_at(moment):
        assert [probe(client, token).status_code for _ in range(3)] == [200] * 3
        limited = probe(client, token)
    assert limited.status_code == 429
    assert limited.headers["Retry-After"] == "45"
    assert limited.get_json()["issue"][0]["code"] == "throttled"
    with frozen_at(moment + timedelta(minutes=1)):
        assert probe(client, token).status_code == 200
    with fhir_app.app_context():
        windows = db.session.scalars(select(FhirRateWindow.count)).all()
        assert sorted(windows) == [1, 4]
        with frozen_at(moment + timedelta(hours=1)):
            assert purge_expired_fhir_rows() >= 3  # two windows and the token
            db.session.commit()
        assert db.session.scalar(select(func.count()).select_from(FhirRateWindow)) == 0
        assert db.session.scalar(select(func.count()).select_from(FhirAssertion)) == 0


@pytest.mark.parametrize(
    ("data", "content_type", "status"),
    [
        ({"grant_type": "password", "scope": "system/Task.rs"}, None, 400),
        ({"scope": "system/Task.rs"}, None, 400),
        ({"grant_type": "client_credentials"}, None, 401),
        ('{"grant_type": "client_credentials"}', "application/json", 400),
        ("grant_type=client_credentials&grant_type=client_credentials", None, 400),
        ("x=" + "A" * 100_000, None, 413),
        ("grant_type=client_credentials&client_id=%00&client_secret=%00", None, 401),
        ("grant_type=client_credentials&client_id=" + "A" * 10_000 + "&client_secret=x", None, 401),
        ("grant_type=client_credentials&client_assertion_type=x&client_assertion=y", None, 400),
        (
            "grant_type=client_credentials&client_assertion_type="
            + auth.ASSERTION_TYPE
            + "&client_assertion=a.b.c",
            None,
            401,
        ),
        (
            "grant_type=client_credentials&client_assertion_type="
            + auth.ASSERTION_TYPE
            + "&client_assertion=%ff%fe.%00.%00",
            None,
            401,
        ),
        (b"\xff\xfe\x00grant_type", None, 400),
    ],
)
def test_hostile_token_requests_get_oauth_errors(
    fhir_app, desk, client, data, content_type, status
):
    kwargs = {"content_type": content_type or "application/x-www-form-urlencoded"}
    response = client.post("/auth/token", data=data, **kwargs)
    assert response.status_code == status, response.get_data(as_text=True)[:300]
    body = response.get_json()
    assert body["error"] in {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unsupported_grant_type",
        "invalid_scope",
    }
    assert isinstance(body["error_description"], str)
    with fhir_app.app_context():
        assert db.session.scalar(select(func.count()).select_from(FhirAccessToken)) == 0
        assert db.session.scalar(select(func.count()).select_from(FhirAssertion)) == 0


def test_odd_credentials_are_refused_cleanly(fhir_app, desk, client):
    key = rsa_key()
    client_id, _ = make_client(fhir_app, desk, jwks={"keys": [public_jwk(key, "k1")]})
    for header in ("Basic !!!", "Basic " + base64.b64encode(b"no-colon").decode(), "Digest x"):
        response = ask(client, {"grant_type": "client_credentials"}, {"Authorization": header})
        assert response.status_code in (400, 401), header
    # A client with keys and no secret cannot use a secret.
    response = ask(
        client,
        {"grant_type": "client_credentials", "client_id": client_id, "client_secret": "x"},
    )
    assert response.status_code == 401
    # A GET is a 405, as OAuth JSON.
    response = client.get("/auth/token")
    assert response.status_code == 405
    assert response.get_json()["error"] == "invalid_request"


def test_a_token_got_with_the_old_secret_as_it_was_rotated_is_refused(
    fhir_app, desk, client, client_for, monkeypatch
):
    """The secret is rotated while a token request that has just checked the old one
    is running: the token it then stores must open nothing."""
    client_id, secret = make_client(fhir_app, desk, secret=True)
    with fhir_app.app_context():
        row_id = db.session.scalar(select(FhirClient.id).filter_by(client_id=client_id))
    real = auth.verify_password
    rotated = []

    def verify(stored_hash, given):
        checked = real(stored_hash, given)
        if not rotated and stored_hash is not None:
            rotated.append(None)

            def rotate() -> None:  # the admin's own requests, in their own thread
                admin = client_for(desk.admin)
                rotated[0] = admin.post(f"/admin/fhir-clients/{row_id}/secret").status_code

            elsewhere = threading.Thread(target=rotate)
            elsewhere.start()
            elsewhere.join(10)
        return checked

    monkeypatch.setattr(auth, "verify_password", verify)
    issued = ask(client, secret_form(client_id, secret))
    assert rotated == [200] and issued.status_code == 200
    token = issued.get_json()["access_token"]
    assert probe(client, token).status_code == 401
