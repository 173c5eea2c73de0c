"""Form bodies every view can parse: refused with a 400 before CSRF or a view reads them.

A multipart part without a name (`Content-Disposition: form-data` alone) reaches
Werkzeug's form as a field named None, which Flask-WTF's CSRF check then fails on
with a 500. No browser sends one.
"""

from __future__ import annotations

from flask import Flask, abort, request

BODY_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def refuse_unnamed_parts() -> None:
    multipart = request.method in BODY_METHODS and request.mimetype == "multipart/form-data"
    if multipart and (None in request.form or None in request.files):
        abort(400, "Every part of a form needs a name.")


def install_request_body_checks(app: Flask) -> None:
    """Call before the extensions are set up: before_request functions run in the order
    they were registered, and CSRFProtect's is one of them."""
    app.before_request(refuse_unnamed_parts)
