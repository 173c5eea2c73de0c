"""Error pages that say what happened and never echo request data."""

from __future__ import annotations

from flask import Flask, render_template
from flask_wtf.csrf import CSRFError


def install_error_handlers(app: Flask) -> None:
    def page(code: int, title: str, message: str):
        return render_template("errors/error.html", code=code, title=title, message=message), code

    @app.errorhandler(403)
    def forbidden(_error):
        return page(403, "Not allowed", "Your account cannot do this.")

    @app.errorhandler(404)
    def not_found(_error):
        return page(404, "Page not found", "There is nothing here, or you cannot see it.")

    @app.errorhandler(413)
    def too_large(_error):
        return page(
            413,
            "Upload too large",
            "The files you sent are too large together. Send fewer or smaller documents.",
        )

    @app.errorhandler(CSRFError)
    def csrf_failed(_error):
        return page(
            400,
            "The form expired",
            "For your security the form could not be accepted. Go back, reload the page "
            "and try again.",
        )
