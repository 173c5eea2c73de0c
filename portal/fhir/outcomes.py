"""Refusals as OperationOutcome resources, and FHIR JSON responses.

Every refusal names the element it is about (a FHIRPath in `expression`) and says what
to fix, with the HTTP status that fits: 400 (not FHIR JSON at all), 401 (no valid
token), 403 (a scope the client lacks), 404 (no such resource, or another partner's:
the same answer), 409 (a conflict), 413 (too large), 422 (valid FHIR that we cannot
take, e.g. another country's profile), 429 (too many calls, with Retry-After).
"""

from __future__ import annotations

import json
from typing import Any

from flask import Response, request
from werkzeug.exceptions import HTTPException

from portal.fhir import FHIR_JSON

# HTTP status -> OperationOutcome.issue.code (https://hl7.org/fhir/R4/valueset-issue-type.html)
ISSUE_CODES = {
    400: "structure",
    401: "login",
    403: "forbidden",
    404: "not-found",
    405: "not-supported",
    406: "not-supported",
    409: "conflict",
    410: "deleted",
    412: "conflict",
    413: "too-costly",
    415: "not-supported",
    422: "processing",
    429: "throttled",
}


class FhirError(Exception):
    """A refusal: raise it anywhere under the FHIR door; it becomes an OperationOutcome."""

    def __init__(
        self,
        status: int,
        diagnostics: str,
        *,
        expression: str | list[str] | None = None,
        code: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(diagnostics)
        self.status = status
        self.diagnostics = diagnostics
        self.expression = [expression] if isinstance(expression, str) else (expression or [])
        self.code = code or ISSUE_CODES.get(status, "processing" if status < 500 else "exception")
        self.headers = headers or {}


def operation_outcome(
    diagnostics: str, *, code: str, expression: list[str] | None = None, severity: str = "error"
) -> dict[str, Any]:
    issue: dict[str, Any] = {"severity": severity, "code": code, "diagnostics": diagnostics}
    if expression:
        issue["expression"] = expression
    return {"resourceType": "OperationOutcome", "issue": [issue]}


def fhir_response(
    resource: dict[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    """A resource (already a plain dict, e.g. `model.model_dump(mode="json",
    exclude_none=True)`) as application/fhir+json."""
    body = json.dumps(resource, separators=(",", ":"), ensure_ascii=False)
    response = Response(body, status=status, mimetype=FHIR_JSON)
    response.headers.update(headers or {})
    return response


def error_response(error: FhirError) -> Response:
    outcome = operation_outcome(error.diagnostics, code=error.code, expression=error.expression)
    return fhir_response(outcome, error.status, error.headers)


def http_error_response(error: HTTPException) -> Response:
    """Werkzeug's errors (an unknown path, a wrong method, a body too large, a server
    error) on the FHIR door, as OperationOutcomes with the same status and headers."""
    if request.path == "/auth/token":  # OAuth, not FHIR: RFC 6749 errors there
        from portal.fhir.auth import oauth_http_error  # noqa: PLC0415 - auth imports us

        return oauth_http_error(error)
    status = error.code or 500
    if status >= 500:
        message = "The server could not process the request; try again later."
    else:
        message = error.description or error.name
    headers = {}
    if status == 405 and getattr(error, "valid_methods", None):
        headers["Allow"] = ", ".join(error.valid_methods)
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return error_response(FhirError(status, message, headers=headers))
