"""The status a FHIR call's audit row records for a refusal: the one the client got."""

from __future__ import annotations

from flask import Response
from werkzeug.exceptions import HTTPException, NotFound, RequestEntityTooLarge

from portal.fhir.clients import _refusal_status
from portal.fhir.outcomes import FhirError


def test_each_kind_of_refusal_is_audited_with_the_status_sent():
    assert _refusal_status(FhirError(422, "another country's message")) == 422
    assert _refusal_status(RequestEntityTooLarge()) == 413
    assert _refusal_status(NotFound()) == 404
    # abort(response): the exception has no code of its own, the response has one.
    assert _refusal_status(HTTPException(response=Response(status=409))) == 409
    assert _refusal_status(HTTPException()) == 500
