"""Error pages: what happened, what to do next, and a reference that matches a log line.

Every HTTP error the portal raises or meets (400 to 500) is rendered here in one of
three shapes, chosen by who asked:
- patients on a signed-link page get the practice's page in plain language, with its
  phone number and nothing about the referral;
- htmx requests get a fragment the page shows in its alert region (portal.js);
- everyone else gets the portal's page.

Messages never echo what the request carried. A 400's own description is shown: the
portal writes those (query_args, abort(400, description=...)), never the client.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass

from flask import Flask, current_app, g, render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from markupsafe import escape
from werkzeug.exceptions import BadHost, BadRequest, HTTPException, InternalServerError

from portal.extensions import db
from portal.fhir import fhir_path
from portal.fhir.outcomes import http_error_response
from portal.i18n import use_language
from portal.patients.language import error_page_language
from portal.request_ids import current_request_id

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ErrorCopy:
    title: str
    message: str
    next_step: str


STAFF_COPY = {
    400: ErrorCopy(
        _l("Sorry, we could not use that request"),
        _l("Something in the request was not in a form the portal accepts."),
        _l("Go back, check what you entered and try again."),
    ),
    403: ErrorCopy(
        _l("You cannot do this"),
        _l("Your account does not allow this."),
        _l("If you think it should, ask your portal administrator."),
    ),
    404: ErrorCopy(
        _l("Page not found"),
        _l("There is nothing here, or you cannot see it."),
        _l(
            "If you typed the web address, check it. If you followed a link, start again "
            "from the start page."
        ),
    ),
    405: ErrorCopy(
        _l("That cannot be done from here"),
        _l("This page does not accept that kind of request."),
        _l("Go back and use the buttons on the page."),
    ),
    410: ErrorCopy(
        _l("This page has gone"),
        _l("What was here has expired or been removed."),
        _l("Start again from the start page."),
    ),
    413: ErrorCopy(
        _l("Upload too large"),
        _l("The files you sent are too large together."),
        _l("Send fewer or smaller documents."),
    ),
    429: ErrorCopy(
        _l("Too many attempts"),
        _l("There have been too many tries in a short time."),
        _l("Wait a little and try again."),
    ),
    500: ErrorCopy(
        _l("Sorry, there is a problem with the service"),
        _l("The portal could not finish what you asked. What you were doing was not saved."),
        _l(
            "Try again in a few minutes. If it keeps happening, tell your portal "
            "administrator the reference below."
        ),
    ),
}
CSRF_COPY = ErrorCopy(
    _l("The form expired"),
    _l("For your security the form could not be accepted."),
    _l("Go back, reload the page and try again."),
)

# Patients read these on a phone, often once: short sentences, and a phone number.
PATIENT_COPY = {
    400: ErrorCopy(
        _l("Sorry, please try again"),
        _l("We could not read what was sent."),
        _l("Go back, reload the page and try again."),
    ),
    404: ErrorCopy(
        _l("This page does not work"),
        _l("Check that you opened the whole link from our message."),
        _l("If it still does not work, call us."),
    ),
    429: ErrorCopy(
        _l("Please wait a moment"),
        _l("There have been too many tries in a short time."),
        _l("Wait a minute and try again, or call us."),
    ),
    500: ErrorCopy(
        _l("Sorry, something went wrong on our side"),
        _l("Your answer was not saved."),
        _l("Try again in a few minutes, or call us."),
    ),
}
PATIENT_CSRF_COPY = ErrorCopy(
    _l("Sorry, please try again"),
    _l("The page was open for a long time, so for your security we could not accept it."),
    _l("Go back, reload the page and try again."),
)


def _is_patient_page() -> bool:
    # By path, not blueprint: a mangled link (a trailing ")" or a token cut short) or a
    # wrong method matches no patient route, yet it is a patient who opened it.
    return request.path.startswith("/p/")


def _copy_for(error: HTTPException) -> ErrorCopy:
    code = error.code or 500
    if _is_patient_page():
        if isinstance(error, CSRFError):
            return PATIENT_CSRF_COPY
        return PATIENT_COPY.get(code) or PATIENT_COPY[400 if code < 500 else 500]
    if isinstance(error, CSRFError):
        return CSRF_COPY
    copy = STAFF_COPY.get(code) or STAFF_COPY[400 if code < 500 else 500]
    if code == 400 and _portal_description(error):
        return ErrorCopy(copy.title, error.description, copy.next_step)
    return copy


def _portal_description(error: HTTPException) -> bool:
    """A 400 whose description the portal wrote (not Werkzeug's generic sentence)."""
    return (
        isinstance(error, BadRequest)
        and not isinstance(error, CSRFError)
        and bool(error.description)
        and error.description != BadRequest.description
    )


def render_error(error: HTTPException):
    """The page (or fragment) for `error`, with its status and headers."""
    if fhir_path(request.path):  # an EHR reads OperationOutcomes, not pages
        return http_error_response(error)
    code = error.code or 500
    if isinstance(request.routing_exception, BadHost):  # not even routed: no page links
        return f"{code} {error.name}\n", code, {"Content-Type": "text/plain; charset=utf-8"}
    context = {"code": code, "copy": _copy_for(error)}
    if _is_patient_page():
        if "portal_locale" not in g:  # the error came before the page chose a language
            use_language(error_page_language(request.path))
        template = "patients/error.html"
        context["phone"] = current_app.config["PRACTICE_PHONE"]
    elif request.headers.get("HX-Request") == "true":
        template = "errors/_fragment.html"
    else:
        template = "errors/server_error.html" if code >= 500 else "errors/error.html"
    headers = {}
    if code == 405 and getattr(error, "valid_methods", None):
        headers["Allow"] = ", ".join(error.valid_methods)
    retry_after = getattr(error, "retry_after", None)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if code >= 500:
        return _render_without_database(template, context), code, headers
    return render_template(template, **context), code, headers


def _render_without_database(template: str, context: dict) -> str:
    """Render with the template alone: no context processors, no signed-in user, so a
    page still comes out when the database is what failed; if even that fails, a line
    of HTML with the reference."""
    request_id = current_request_id()
    try:
        return current_app.jinja_env.get_template(template).render(request_id=request_id, **context)
    except Exception:
        log.exception("the error page could not be rendered")
        return (
            "<!doctype html><html lang=en><title>Error</title>"
            "<h1>Sorry, there is a problem with the service</h1>"
            f"<p>Try again in a few minutes. Reference: {escape(request_id or '')}</p></html>"
        )


def install_error_handlers(app: Flask) -> None:
    # Flask hands redirects raised with abort(redirect(...)) and routing redirects
    # back to the client itself; only real errors reach these handlers.
    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException):
        return render_error(error)

    @app.errorhandler(InternalServerError)
    def server_error(error: InternalServerError):
        # Whatever the request half-wrote is abandoned; if the database itself is gone,
        # the rollback fails too and the page is still rendered without it. Flask has
        # already logged the traceback (under this request's id); this line names the
        # endpoint, never the path (a patient link's path holds its token).
        with contextlib.suppress(Exception):
            db.session.rollback()
        original = error.original_exception or error
        log.error(
            "unhandled %s on %s %s",
            type(original).__name__,
            request.method,
            request.endpoint or "(no endpoint)",
        )
        return render_error(error)
