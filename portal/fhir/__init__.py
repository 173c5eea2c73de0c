"""The FHIR R4 door for referring EHRs (docs/fhir.md): the same workflow as the web
form, reached over FHIR messaging, SMART Backend Services authorisation and reads of
the receiver's Task.

- `outcomes`: every refusal as an OperationOutcome; FHIR JSON responses.
- `clients`: bearer tokens, the `fhir_api` decorator (token, scope, rate limit, audit).
- `auth`: POST /auth/token (client_credentials with private_key_jwt or a secret) and
  /.well-known/smart-configuration.
- `messages`: POST /fhir/$process-message (add-service-request, revoke-service-request,
  add-communication), through the services the web form uses.
- `mapping`: our statuses to Task.status and the businessStatus CodeSystem; a referral
  as ServiceRequest, Task, Communication and Appointment resources.
- `reads`: GET /fhir/metadata, Task, ServiceRequest, Communication, Appointment.

Resources are parsed and built with fhir.resources' R4B models (8.x ships no plain R4;
R4B's resources used here are R4's, and the CapabilityStatement declares 4.0.1).
"""

from __future__ import annotations

from flask import Blueprint

from portal.config import Config

FHIR_VERSION = "4.0.1"
FHIR_JSON = "application/fhir+json"
# Our CodeSystems' canonical URLs: fixed per process from PORTAL_BASE_URL's environment
# value, so the system in every resource and the published CodeSystem's url always
# agree. GET /fhir/CodeSystem/<id> answers each.
CODE_SYSTEM_BASE = f"{Config.PORTAL_BASE_URL.rstrip('/')}/fhir/CodeSystem"

# /fhir/...: the FHIR base; /auth/token and /.well-known/smart-configuration beside it.
bp = Blueprint("fhir", __name__, url_prefix="/fhir")
auth_bp = Blueprint("fhir_auth", __name__)


def fhir_path(path: str) -> bool:
    """Whether a request path belongs to the FHIR door (answered in FHIR JSON)."""
    return path.startswith("/fhir/") or path in ("/fhir", "/auth/token")


def install_fhir(app) -> None:  # noqa: ANN001 - a Flask app
    """Register the FHIR door: its routes (no CSRF: bearer tokens, not cookies) and its
    refusals as OperationOutcomes."""
    from portal.extensions import csrf
    from portal.fhir import auth, messages, reads  # noqa: F401 - they add their routes
    from portal.fhir.outcomes import FhirError, error_response

    for blueprint in (bp, auth_bp):
        csrf.exempt(blueprint)
        # Once per process: the blueprints are module objects, apps (tests) are many.
        if not blueprint._got_registered_once:
            blueprint.register_error_handler(FhirError, error_response)
        app.register_blueprint(blueprint)
