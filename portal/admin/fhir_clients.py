"""FHIR clients: the partners' EHRs allowed through the FHIR door (docs/fhir.md).

Admins and partner success register a client for a partner (its name, scopes, public
keys as a JWKS or a JWKS URL, and/or a client secret), rotate its secret, replace its
keys and revoke it. A secret is shown once, on the page that answers its creation or
rotation; only its hash is kept. Every change is audited (portal/fhir/registry.py).
"""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select
from wtforms import BooleanField, SelectField, StringField, TextAreaField, URLField
from wtforms.validators import DataRequired, Length, Optional

from portal.accounts.sessions import roles_required
from portal.admin.routes import PARTNER_MANAGERS, bp
from portal.extensions import db
from portal.fhir.registry import (
    KeysRefused,
    check_jwks_url,
    parse_jwks,
    register_client,
    replace_keys,
    revoke_client,
    rotate_secret,
)
from portal.forms import PortalForm
from portal.models import FhirClient, Partner
from portal.query_args import id_arg
from portal.referrals.actions import MultiCheckboxField
from portal.referrals.forms import stripped

SCOPE_LABELS = {
    "system/ServiceRequest.c": _l("Submit referrals"),
    "system/ServiceRequest.u": _l("Withdraw referrals"),
    "system/Communication.c": _l("Answer requests for information"),
    "system/Task.rs": _l("Read and search referral status (Task)"),
    "system/ServiceRequest.rs": _l("Read and search referrals (ServiceRequest)"),
    "system/Communication.rs": _l("Read requests for information (Communication)"),
    "system/Appointment.rs": _l("Read appointments"),
}


class FhirKeysForm(PortalForm):
    """Public keys for private_key_jwt: a pasted JWKS or an https JWKS URL (or neither,
    for a client that uses only its secret)."""

    jwks = TextAreaField(
        _l("Public keys (JWKS)"),
        description=_l(
            "Paste the EHR's JSON Web Key Set: RSA keys of at least 2048 bits or EC P-384 "
            "keys, public parts only, each with a kid."
        ),
        filters=[stripped],
        validators=[Optional(), Length(max=20_000)],
    )
    jwks_url = URLField(
        _l("Or the address of its key set (JWKS URL)"),
        description=_l("An https:// address the EHR publishes its public keys at."),
        filters=[stripped],
        validators=[Optional(), Length(max=500)],
    )

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        self.parsed_jwks = None
        if not valid:
            return False
        if self.jwks.data and self.jwks_url.data:
            self.jwks_url.errors = [
                *self.jwks_url.errors,
                gettext("Give the keys or their address, not both."),
            ]
            return False
        try:
            if self.jwks.data:
                self.parsed_jwks = parse_jwks(self.jwks.data)
            if self.jwks_url.data:
                check_jwks_url(self.jwks_url.data)
        except KeysRefused as refused:
            field = self.jwks if self.jwks.data else self.jwks_url
            field.errors = [*field.errors, str(refused)]
            return False
        return True


class FhirClientForm(FhirKeysForm):
    name = StringField(
        _l("Name"),
        description=_l("Which EHR this is, e.g. “Alpha Primary Care – Epic”."),
        filters=[stripped],
        validators=[DataRequired(), Length(max=120)],
    )
    partner = SelectField(_l("Partner"), coerce=int, validators=[DataRequired()])
    scopes = MultiCheckboxField(
        _l("What it may do"), choices=[(scope, label) for scope, label in SCOPE_LABELS.items()]
    )
    with_secret = BooleanField(_l("Create a client secret"))

    def validate(self, extra_validators=None) -> bool:
        valid = super().validate(extra_validators)
        if valid and not self.scopes.data:
            self.scopes.errors = [*self.scopes.errors, gettext("Choose at least one.")]
            valid = False
        if valid and not (self.parsed_jwks or self.jwks_url.data or self.with_secret.data):
            self.with_secret.errors = [
                *self.with_secret.errors,
                gettext("Give public keys or a key set address, or create a secret."),
            ]
            valid = False
        return valid


class ConfirmForm(PortalForm):
    """A button behind CSRF (rotate, revoke)."""


def _client_or_404(fhir_client_id: int) -> FhirClient:
    client = db.session.get(FhirClient, fhir_client_id)
    if client is None:
        abort(404)
    return client


@bp.get("/fhir-clients")
@roles_required(*PARTNER_MANAGERS)
def fhir_clients():
    """Every FHIR client, by partner (one partner's with ?partner=)."""
    partner_id = id_arg("partner")
    statement = select(FhirClient).join(FhirClient.partner).order_by(Partner.name, FhirClient.name)
    partner = None
    if partner_id is not None:
        partner = db.session.get(Partner, partner_id)
        if partner is None:
            abort(404)
        statement = statement.where(FhirClient.partner_id == partner_id)
    clients = db.session.scalars(statement).all()
    return render_template("admin/fhir_clients.html", clients=clients, partner=partner)


@bp.route("/fhir-clients/new", methods=["GET", "POST"])
@roles_required(*PARTNER_MANAGERS)
def new_fhir_client():
    """Register a partner's EHR as a FHIR client."""
    form = FhirClientForm()
    form.partner.choices = [
        (partner.id, partner.name)
        for partner in db.session.scalars(select(Partner).order_by(Partner.name))
    ]
    if request.method == "GET":
        form.partner.data = id_arg("partner")
    if form.validate_on_submit():
        partner = db.session.get(Partner, form.partner.data)
        client, secret = register_client(
            partner,
            form.name.data,
            form.scopes.data,
            created_by=current_user,
            jwks=form.parsed_jwks,
            jwks_url=form.jwks_url.data or None,
            with_secret=form.with_secret.data,
        )
        db.session.commit()
        flash(gettext("FHIR client “%(name)s” registered.", name=client.name), "success")
        # The secret is on this answer only: never in a redirect, a session or a log.
        return _client_page(client, secret=secret)
    return render_template("admin/fhir_client_form.html", form=form), (
        422 if request.method == "POST" else 200
    )


def _client_page(client: FhirClient, *, secret: str | None = None, keys_form=None, status=200):
    response = render_template(
        "admin/fhir_client.html",
        client=client,
        secret=secret,
        keys_form=keys_form or FhirKeysForm(formdata=None, jwks_url=client.jwks_url),
        scope_labels=SCOPE_LABELS,
    )
    headers = {"Cache-Control": "no-store"} if secret else {}
    return response, status, headers


@bp.get("/fhir-clients/<id:fhir_client_id>")
@roles_required(*PARTNER_MANAGERS)
def fhir_client(fhir_client_id: int):
    """A FHIR client: its id, partner, scopes, keys and state."""
    return _client_page(_client_or_404(fhir_client_id))


@bp.post("/fhir-clients/<id:fhir_client_id>/secret")
@roles_required(*PARTNER_MANAGERS)
def rotate_fhir_client_secret(fhir_client_id: int):
    """Give the client a new secret, shown once; the old one stops working now."""
    client = _client_or_404(fhir_client_id)
    if not ConfirmForm().validate_on_submit() or client.revoked_at is not None:
        abort(400)
    secret = rotate_secret(client, by=current_user)
    db.session.commit()
    flash(gettext("A new secret was made; the old one no longer works."), "success")
    return _client_page(client, secret=secret)


@bp.post("/fhir-clients/<id:fhir_client_id>/keys")
@roles_required(*PARTNER_MANAGERS)
def replace_fhir_client_keys(fhir_client_id: int):
    """Register other public keys for the client."""
    client = _client_or_404(fhir_client_id)
    if client.revoked_at is not None:
        abort(400)
    form = FhirKeysForm()
    valid = form.validate_on_submit()
    if valid and not (form.parsed_jwks or form.jwks_url.data or client.secret_hash):
        form.jwks.errors = [
            *form.jwks.errors,
            gettext("This client has no secret: give it keys or a key set address."),
        ]
        valid = False
    if not valid:
        return _client_page(client, keys_form=form, status=422)
    replace_keys(
        client, jwks=form.parsed_jwks, jwks_url=form.jwks_url.data or None, by=current_user
    )
    db.session.commit()
    flash(gettext("The client's keys were replaced."), "success")
    return redirect(url_for("admin.fhir_client", fhir_client_id=client.id))


@bp.post("/fhir-clients/<id:fhir_client_id>/revoke")
@roles_required(*PARTNER_MANAGERS)
def revoke_fhir_client(fhir_client_id: int):
    """Revoke the client: its tokens stop working at once, and it gets no new ones."""
    client = _client_or_404(fhir_client_id)
    if not ConfirmForm().validate_on_submit():
        abort(400)
    revoke_client(client, by=current_user)
    db.session.commit()
    flash(gettext("FHIR client “%(name)s” revoked.", name=client.name), "success")
    return redirect(url_for("admin.fhir_client", fhir_client_id=client.id))
