"""Security headers on every response."""

from __future__ import annotations

from flask import Flask, Response, request

# No inline script anywhere: htmx is a vendored file and its config is a <meta> tag.
CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self' data:",
        "connect-src 'self'",
        "form-action 'self'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        "object-src 'none'",
    ]
)


def security_headers(*, secure: bool, static: bool = False) -> list[tuple[str, str]]:
    """The headers every response carries (over HTTPS: `secure`; a vendored file:
    `static`). The timeline's early 304 (portal/referrals/timeline_poll.py) sends them
    too."""
    headers = [
        ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
        ("X-Frame-Options", "DENY"),
        ("X-Content-Type-Options", "nosniff"),
        ("Referrer-Policy", "same-origin"),
        ("Cross-Origin-Opener-Policy", "same-origin"),
        ("Permissions-Policy", "camera=(), microphone=(), geolocation=()"),
    ]
    if secure:
        headers.append(("Strict-Transport-Security", "max-age=31536000; includeSubDomains"))
    # Pages carry patient data: never keep them in shared or browser caches.
    if not static:
        headers.append(("Cache-Control", "no-store"))
    return headers


def install_security_headers(app: Flask) -> None:
    @app.after_request
    def _security_headers(response: Response) -> Response:
        secure, static = request.is_secure, request.path.startswith("/static/")
        for name, value in security_headers(secure=secure, static=static):
            response.headers.setdefault(name, value)
        return response
