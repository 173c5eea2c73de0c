"""One logging set-up for the web workers, gunicorn's own lines and the jobs process.

Every line carries the request's id (`-` outside a request) and goes out as text for
people or as one JSON object a line for log shippers (LOG_FORMAT). Whatever a line
holds, the formatter takes link tokens out of it last (`redact_tokens`), so a path in a
message, an exception or an access line never writes a live token.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Mapping
from typing import Any

from flask import Flask
from pythonjsonlogger.json import JsonFormatter

from portal.config import ConfigurationError
from portal.request_ids import current_request_id

LOG_FORMATS = ("text", "json")
# The portal's own loggers log at LOG_LEVEL; libraries (APScheduler, SQLAlchemy, ...)
# only their warnings and errors.
OWN_LOGGERS = ("portal", "jobs")
LIBRARY_LEVEL = logging.WARNING

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [req=%(request_id)s] %(message)s"
JSON_FIELDS = "%(asctime)s %(levelname)s %(name)s %(request_id)s %(component)s %(message)s"
JSON_NAMES = {"asctime": "timestamp", "levelname": "level", "name": "logger"}

# Signed patient links (/p/<token>/...), invitations (/invitations/<token>) and any
# `token=` query value (password resets; gunicorn's error lines quote the whole URI).
# A token never holds a slash, quote, space or backslash, so a JSON line stays valid.
_TOKEN_SEGMENT = re.compile(r"(/(?:p|invitations)/|[?&;]token=)[^/?&#;\s\"'<>\\]+")
REDACTED = "[token]"


def redact_tokens(text: str) -> str:
    """`text` (a path, a URL or a whole log line) with every link token made `[token]`."""
    return _TOKEN_SEGMENT.sub(rf"\1{REDACTED}", text)


class RequestContext(logging.Filter):
    """Adds `request_id` (this request's, `-` outside one) and `component` (web or jobs)
    to every record, unless the caller passed them (gunicorn's access lines do)."""

    def __init__(self, component: str) -> None:
        super().__init__()
        self.component = component

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = current_request_id() or "-"
        if not hasattr(record, "component"):
            record.component = self.component
        return True


class _PortalFormatting(logging.Formatter):
    """UTC timestamps with milliseconds, and no token in the finished line."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        return f"{seconds}.{int(record.msecs):03d}Z"

    def format(self, record: logging.LogRecord) -> str:
        return redact_tokens(super().format(record))


class TextFormatter(_PortalFormatting):
    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)


class JsonLineFormatter(_PortalFormatting, JsonFormatter):
    def __init__(self) -> None:
        super().__init__(JSON_FIELDS, rename_fields=JSON_NAMES)


def portal_formatter(log_format: str) -> logging.Formatter:
    if log_format not in LOG_FORMATS:
        raise ConfigurationError(
            f"LOG_FORMAT={log_format!r} is not one of {', '.join(LOG_FORMATS)}"
        )
    return JsonLineFormatter() if log_format == "json" else TextFormatter()


def format_handler(handler: logging.Handler, log_format: str, component: str) -> logging.Handler:
    """Make `handler` write the portal's lines (gunicorn's handlers are made this way too)."""
    handler.setFormatter(portal_formatter(log_format))
    for old in [f for f in handler.filters if isinstance(f, RequestContext)]:
        handler.removeFilter(old)
    handler.addFilter(RequestContext(component))
    return handler


def log_level(name: str) -> int:
    level = logging.getLevelNamesMapping().get(str(name).upper())
    if level is None:
        raise ConfigurationError(f"LOG_LEVEL={name!r} is not a logging level")
    return level


class PortalLogHandler(logging.StreamHandler):
    """The one handler `configure_logging` puts on the root logger (to stderr)."""


def configure_logging(app_or_config: Flask | Mapping[str, Any], process: str = "web") -> None:
    """Send every log line of this process (`web` or `jobs`) to stderr in LOG_FORMAT.

    Safe to call again: the previous handler of ours is replaced, never stacked. Under
    test it changes nothing: pytest's capture and `caplog` own the root logger there.
    """
    config = app_or_config.config if isinstance(app_or_config, Flask) else app_or_config
    # Built before the test check so that a wrong setting fails the suite too.
    handler = format_handler(PortalLogHandler(), config["LOG_FORMAT"], process)
    level = log_level(config["LOG_LEVEL"])
    if config.get("TESTING"):
        return
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, PortalLogHandler)]:
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(LIBRARY_LEVEL)
    for name in OWN_LOGGERS:
        logging.getLogger(name).setLevel(level)
    # Python's warnings become log lines too, so a JSON log holds nothing but JSON.
    logging.captureWarnings(True)
