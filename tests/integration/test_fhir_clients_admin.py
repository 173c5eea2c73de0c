"""FHIR clients as admins and partner success manage them: register an EHR for a
partner, see its secret once, rotate it, replace its keys, revoke it; every change
audited; and the client's user row is never a person in the account pages."""

from __future__ import annotations

import json
import re

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm
from sqlalchemy import select

from portal.accounts.services import AccountChangeRefused, InvitationInvalid, invite_user
from portal.accounts.services import set_enabled as set_account_enabled
from portal.extensions import db
from portal.fhir.registry import register_client
from portal.models import AuditEntry, FhirClient, Partner, Role, ServiceLine
from tests.fixtures.desk import user

SECRET_FIELD = re.compile(r'id="client-secret"|value="([\w-]{40,})"')


def public_jwks(*keys, kid_prefix="k") -> str:
    entries = []
    for number, key in enumerate(keys):
        algorithm = RSAAlgorithm if isinstance(key, rsa.RSAPrivateKey) else ECAlgorithm
        entries.append(
            {**algorithm.to_jwk(key.public_key(), as_dict=True), "kid": f"{kid_prefix}{number}"}
        )
    return json.dumps({"keys": entries})


def shown_secret(html: str) -> str | None:
    found = re.search(r'id="client-secret"', html)
    if not found:
        return None
    return re.search(r'value="([^"]+)"[^>]*id="client-secret"', html).group(1)


def register(client, desk, **fields):
    data = {
        "name": "Alpha EHR",
        "partner": str(desk.partner_a_id),
        "scopes": ["system/Task.rs", "system/ServiceRequest.c"],
        **fields,
    }
    return client.post("/admin/fhir-clients/new", data=data)


def token_with_secret(client, client_id, secret):
    return client.post(
        "/auth/token",
        data={
            "grant_type": "client_credentials",
            "scope": "system/Task.rs",
            "client_id": client_id,
            "client_secret": secret,
        },
    )


def the_client(app) -> tuple[int, str]:
    with app.app_context():
        row = db.session.scalars(select(FhirClient)).one()
        return row.id, row.client_id


def test_an_admin_registers_a_client_and_sees_its_secret_once(app, client_for, desk, client):
    admin = client_for(desk.admin)
    response = register(admin, desk, with_secret="y")
    assert response.status_code == 200, response.get_data(as_text=True)[:2000]
    assert response.headers["Cache-Control"] == "no-store"
    html = response.get_data(as_text=True)
    secret = shown_secret(html)
    assert secret and len(secret) >= 40
    fhir_client_id, client_id = the_client(app)
    assert client_id in html
    # The secret works, and is never on the page again.
    assert token_with_secret(client, client_id, secret).status_code == 200
    again = admin.get(f"/admin/fhir-clients/{fhir_client_id}").get_data(as_text=True)
    assert secret not in again and shown_secret(again) is None
    listing = admin.get(f"/admin/fhir-clients?partner={desk.partner_a_id}").get_data(as_text=True)
    assert "Alpha EHR" in listing and secret not in listing
    with app.app_context():
        row = db.session.get(FhirClient, fhir_client_id)
        assert row.scopes == "system/ServiceRequest.c system/Task.rs"
        assert row.secret_hash and secret not in row.secret_hash
        entry = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "fhir_client.registered")
        ).one()
        assert entry.actor_id == user(desk.admin).id
        assert secret not in json.dumps(entry.detail)


def test_partner_success_registers_with_keys_and_a_rotated_secret_replaces_the_old(
    app, client_for, desk, client
):
    success = client_for(desk.success)
    keys = public_jwks(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    response = register(success, desk, jwks=keys)
    assert response.status_code == 200
    assert shown_secret(response.get_data(as_text=True)) is None
    fhir_client_id, client_id = the_client(app)
    rotated = success.post(f"/admin/fhir-clients/{fhir_client_id}/secret")
    assert rotated.status_code == 200
    first = shown_secret(rotated.get_data(as_text=True))
    assert token_with_secret(client, client_id, first).status_code == 200
    second = shown_secret(
        success.post(f"/admin/fhir-clients/{fhir_client_id}/secret").get_data(as_text=True)
    )
    assert second != first
    assert token_with_secret(client, client_id, first).status_code == 401
    assert token_with_secret(client, client_id, second).status_code == 200
    with app.app_context():
        actions = db.session.scalars(
            select(AuditEntry.action).where(AuditEntry.target_type == "fhir_client")
        ).all()
        assert actions.count("fhir_client.secret_rotated") == 2


def test_keys_are_replaced_and_checked(app, client_for, desk):
    admin = client_for(desk.admin)
    register(admin, desk, with_secret="y")
    fhir_client_id, _ = the_client(app)
    good = public_jwks(ec.generate_private_key(ec.SECP384R1()), kid_prefix="ec")
    response = admin.post(f"/admin/fhir-clients/{fhir_client_id}/keys", data={"jwks": good})
    assert response.status_code == 302
    with app.app_context():
        row = db.session.get(FhirClient, fhir_client_id)
        assert [key["kid"] for key in row.jwks["keys"]] == ["ec0"]
    response = admin.post(
        f"/admin/fhir-clients/{fhir_client_id}/keys",
        data={"jwks_url": "https://ehr.example/.well-known/jwks.json"},
    )
    assert response.status_code == 302
    with app.app_context():
        row = db.session.get(FhirClient, fhir_client_id)
        assert row.jwks is None and row.jwks_url.startswith("https://ehr.example/")
        assert db.session.scalar(
            select(AuditEntry.id).where(AuditEntry.action == "fhir_client.keys_replaced")
        )


def private_jwk() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return json.dumps({"keys": [{**RSAAlgorithm.to_jwk(key, as_dict=True), "kid": "p"}]})


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"jwks": "not json"}, "not JSON"),
        ({"jwks": '{"keys": []}'}, "list of keys"),
        ({"jwks": "[" * 15_000}, "not JSON"),
        ({"jwks": "x" * 20_001}, "at most"),
        ({"jwks": "PRIVATE"}, "private key material"),
        ({"jwks": "SHORT_RSA"}, "at least 2048 bits"),
        ({"jwks": "P256"}, "P-384"),
        ({"jwks": '{"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "s"}]}'}, "private key"),
        ({"jwks": '{"keys": [{"kty": "RSA", "n": "AQAB", "e": "AQAB"}]}'}, "needs a kid"),
        ({"jwks_url": "http://ehr.example/jwks.json"}, "https://"),
        ({"jwks_url": "https://" + "a" * 600}, "at most"),
        ({"jwks_url": "https://ehr.example/\x00"}, "control"),
        ({"name": "x" * 121, "with_secret": "y"}, "at most"),
        ({"name": "", "with_secret": "y"}, "There is a problem"),
        ({"scopes": [], "with_secret": "y"}, "Choose at least one"),
        ({"scopes": ["system/*.*"], "with_secret": "y"}, "There is a problem"),
        ({"partner": "999999999999999999999", "with_secret": "y"}, "There is a problem"),
        ({}, "or create a secret"),
    ],
)
def test_registration_refuses_what_it_cannot_use_and_writes_nothing(
    app, client_for, desk, fields, message
):
    samples = {
        "PRIVATE": private_jwk(),
        "SHORT_RSA": public_jwks(rsa.generate_private_key(public_exponent=65537, key_size=1024)),  # noqa: S505 - refused
        "P256": public_jwks(ec.generate_private_key(ec.SECP256R1())),
    }
    if fields.get("jwks") in samples:
        fields = {**fields, "jwks": samples[fields["jwks"]]}
    response = register(client_for(desk.admin), desk, **fields)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    with app.app_context():
        assert db.session.scalars(select(FhirClient)).all() == []


def test_revoking_stops_the_live_token_at_once(app, client_for, desk, client):
    admin = client_for(desk.admin)
    secret = shown_secret(register(admin, desk, with_secret="y").get_data(as_text=True))
    fhir_client_id, client_id = the_client(app)
    assert token_with_secret(client, client_id, secret).status_code == 200
    response = admin.post(f"/admin/fhir-clients/{fhir_client_id}/revoke")
    assert response.status_code == 302
    page = admin.get(f"/admin/fhir-clients/{fhir_client_id}").get_data(as_text=True)
    assert "Revoked" in page and "Revoke this client" not in page
    assert token_with_secret(client, client_id, secret).status_code == 401
    assert admin.post(f"/admin/fhir-clients/{fhir_client_id}/secret").status_code == 400
    with app.app_context():
        assert db.session.scalar(
            select(AuditEntry.id).where(AuditEntry.action == "fhir_client.revoked")
        )


@pytest.mark.parametrize(
    ("who", "status"), [("intake", 403), ("clinical", 403), ("partner_a", 404)]
)
def test_only_partner_managers_see_fhir_clients(client_for, desk, who, status):
    client = client_for(getattr(desk, who))
    assert client.get("/admin/fhir-clients").status_code == status
    assert client.get("/admin/fhir-clients/new").status_code == status


def test_the_clients_user_row_is_never_a_person(app, client_for, desk, client):
    admin = client_for(desk.admin)
    register(admin, desk, with_secret="y")
    with app.app_context():
        row = db.session.scalars(select(FhirClient)).one()
        user_id, email = row.user_id, row.user.email
    # Not among the partner's users, and no account page or action.
    assert email not in admin.get(f"/admin/partners/{desk.partner_a_id}").get_data(as_text=True)
    assert admin.get(f"/admin/users/{user_id}").status_code == 404
    assert admin.post(f"/admin/users/{user_id}/enable").status_code == 404
    assert email not in admin.get("/admin/users").get_data(as_text=True)
    # No invitation, no sign-in, no reset link.
    response = admin.post(
        f"/admin/partners/{desk.partner_a_id}", data={"full_name": "X", "email": email}
    )
    assert response.status_code == 422
    with app.app_context():
        account = db.session.get(type(row.user), user_id)
        with pytest.raises(InvitationInvalid):
            invite_user(
                email=email,
                full_name="X",
                role=Role.PARTNER,
                partner=account.partner,
                invited_by=None,
            )
        with pytest.raises(AccountChangeRefused):
            set_account_enabled(account, True, by=user(desk.admin))
        db.session.rollback()
    assert client.post("/sign-in", data={"email": email, "password": "x" * 12}).status_code != 302
    client.post("/password/forgot", data={"email": email})
    with app.app_context():
        account = db.session.get(type(row.user), user_id)
        assert not account.enabled and account.password_hash is None


def test_a_service_line_gets_a_unique_fhir_coding(app, client_for, desk):
    admin = client_for(desk.admin)
    base = {"name": "Sleep medicine", "active": "y"}
    coding = {"fhir_system": "http://snomed.info/sct", "fhir_code": "183519002"}
    response = admin.post(f"/admin/service-lines/{desk.sleep_id}", data=base | coding)
    assert response.status_code == 302
    with app.app_context():
        line = db.session.get(ServiceLine, desk.sleep_id)
        assert (line.fhir_system, line.fhir_code) == ("http://snomed.info/sct", "183519002")
    taken = admin.post(
        f"/admin/service-lines/{desk.cardio_id}",
        data={"name": "Cardiac rehabilitation", "active": "y"} | coding,
    )
    assert taken.status_code == 422
    assert "Another service line has this FHIR code" in taken.get_data(as_text=True)
    for bad in (
        {"fhir_system": "http://snomed.info/sct", "fhir_code": ""},
        {"fhir_system": "not a uri", "fhir_code": "1"},
        {"fhir_system": "http://x", "fhir_code": "a  b"},
        {"fhir_system": "http://x", "fhir_code": "1" * 65},
        {"fhir_system": "http://" + "x" * 200, "fhir_code": "1"},
    ):
        response = admin.post(f"/admin/service-lines/{desk.cardio_id}", data=base | bad)
        assert response.status_code == 422, bad
    # Cleared: the line no longer has a coding.
    cleared = {"fhir_system": "", "fhir_code": ""}
    response = admin.post(f"/admin/service-lines/{desk.sleep_id}", data=base | cleared)
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(ServiceLine, desk.sleep_id).fhir_code is None


def test_the_client_pages_keep_their_statement_budget_whatever_the_data(
    app, client_for, desk, count_queries
):
    """The list: session and user; the clients with their partners, in one read; the
    jobs heartbeat (as on every staff page; not cached in tests). A client's page: the
    same with the client and its partner in one read, and the practice settings' version
    for its dates. The same counts with one client as with twenty-one over ten partners."""
    admin = client_for(desk.admin)

    def add_clients(partners: int, per_partner: int) -> int:
        with app.app_context():
            owners = [db.session.get(Partner, desk.partner_a_id)] + [
                Partner(
                    name=f"Partner {n}",
                    specialty="Primary care",
                    referral_contact_name="Pat",
                    referral_contact_email=f"pat{n}@partner.example",
                )
                for n in range(partners - 1)
            ]
            db.session.add_all(owners)
            made = [
                register_client(owner, f"EHR {n}", ["system/Task.rs"], created_by=None)[0]
                for owner in owners
                for n in range(per_partner)
            ]
            db.session.commit()
            return made[0].id

    def statements(path: str) -> int:
        assert admin.get(path).status_code == 200  # warm
        with count_queries() as counted:
            assert admin.get(path).status_code == 200
        return counted.count

    first = add_clients(1, 1)
    small = {
        path: statements(path) for path in ("/admin/fhir-clients", f"/admin/fhir-clients/{first}")
    }
    add_clients(10, 2)
    large = {
        path: statements(path) for path in ("/admin/fhir-clients", f"/admin/fhir-clients/{first}")
    }
    assert large == small, "a statement count grew with the data"
    assert small == {"/admin/fhir-clients": 3, f"/admin/fhir-clients/{first}": 4}
