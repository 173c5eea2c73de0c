"""gunicorn's settings: `gunicorn -c gunicorn.conf.py wsgi:app` (scripts/run.sh does this).

gunicorn's own lines and its access lines go through the portal's formatters
(LOG_FORMAT, LOG_LEVEL), so a log shipper reads one format from every process.
"""

from __future__ import annotations

from urllib.parse import quote

from gunicorn.glogging import Logger

from portal.config import config_from_environment
from portal.logging_config import format_handler, redact_tokens
from portal.request_ids import HEADER

settings = config_from_environment()

bind = ["127.0.0.1:8000"]
workers = 2
threads = 4
accesslog = "-"  # stdout; errors and the portal's own lines go to stderr
errorlog = "-"
loglevel = settings.LOG_LEVEL.lower()


def printable_path(path: str) -> str:
    """The path with its token redacted, and encoded again (PATH_INFO arrives decoded)
    so that no space, quote or line break can split a line or end a token early."""
    return redact_tokens(quote(path, safe="/:@!$&'()*+,;=-._~"))


class PortalLogger(Logger):
    """Access lines without client address or query string, with the request's id."""

    def setup(self, cfg) -> None:
        super().setup(cfg)
        for log in (self.error_log, self.access_log):
            for handler in log.handlers:
                format_handler(handler, settings.LOG_FORMAT, "web")

    def access(self, resp, req, environ, request_time) -> None:
        if not self.access_log_enabled:
            return
        atoms = self.atoms(resp, req, environ, request_time)
        fields = {
            "method": atoms["m"],
            "path": printable_path(atoms["U"] or ""),
            "status": int(atoms["s"]),
            "bytes": atoms["B"] or 0,
            "duration_ms": atoms["M"],
            # Set by the portal on every response it makes; "-" when gunicorn answered.
            "request_id": atoms.get(f"{{{HEADER.lower()}}}o", "-"),
        }
        self.access_log.info(
            "%(method)s %(path)s %(status)s %(bytes)s %(duration_ms)sms", fields, extra=fields
        )


logger_class = PortalLogger
