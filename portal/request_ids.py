"""A reference for every request: in a response header, on every log line, on error pages.

Behind a trusted proxy (TRUSTED_PROXY_COUNT > 0) the proxy's X-Request-ID is kept, so
one id follows a request through the proxy's logs and ours; otherwise a client could
choose the id that lands in our logs, so the portal makes its own.
"""

from __future__ import annotations

import re
import secrets

from flask import Flask, Response, current_app, g, has_request_context, request

HEADER = "X-Request-ID"
# What an id from a proxy may look like: no spaces, quotes or line breaks for a log.
_TRUSTED_ID = re.compile(r"[A-Za-z0-9._:-]{8,64}")


def new_request_id() -> str:
    """Twelve characters a person can read out over the phone."""
    return secrets.token_hex(6)


def current_request_id() -> str | None:
    """This request's id, or None outside a request."""
    if not has_request_context():
        return None
    request_id = g.get("request_id")
    if request_id is None:
        request_id = g.request_id = request_id_for(
            request.headers.get(HEADER, ""), current_app.config["TRUSTED_PROXY_COUNT"]
        )
    return request_id


def request_id_for(incoming: str, trusted_proxies: int) -> str:
    """The id of a request that came with this X-Request-ID: the proxy's when a proxy is
    trusted and the id is one a log can hold, else a new one."""
    if trusted_proxies and _TRUSTED_ID.fullmatch(incoming):
        return incoming
    return new_request_id()


def install_request_ids(app: Flask) -> None:
    @app.before_request
    def _assign_request_id() -> None:
        current_request_id()

    @app.context_processor
    def _request_id_for_templates() -> dict[str, str | None]:
        # Error and link-problem pages show it as the reference to quote.
        return {"request_id": current_request_id()}

    @app.after_request
    def _echo_request_id(response: Response) -> Response:
        response.headers[HEADER] = current_request_id()
        return response
