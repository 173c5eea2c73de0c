"""gunicorn's settings: `gunicorn -c gunicorn.conf.py wsgi:app` (docs/deploy.md; scripts/run.sh).

Production defaults, each overridable from the environment (docs/deploy.md's settings
table lists them beside the portal's own, generated from the comments here). A
command-line flag, or GUNICORN_CMD_ARGS, still wins over this file.

gunicorn's own lines and its access lines go through the portal's formatters
(LOG_FORMAT, LOG_LEVEL), so a log shipper reads one format from every process. The app
is built once, in the master, and each worker is forked from it with a database pool of
its own (portal/forking.py): a connection is never shared across a fork.
"""

from __future__ import annotations

import os
from urllib.parse import quote

from gunicorn.glogging import Logger

from portal.config import config_from_environment
from portal.forking import after_fork, before_forking, is_portal
from portal.logging_config import format_handler, redact_tokens
from portal.request_ids import HEADER

settings = config_from_environment()
DEVELOPMENT = settings.ENV_NAME == "development"

# Where gunicorn listens: loopback, for the reverse proxy on the same machine that
# terminates TLS. Another address (or `unix:/run/portal/web.sock`) only when nothing but
# the proxy can reach it: behind a proxy the portal believes X-Forwarded-For.
bind = [os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")]
# Worker processes: one per core this process may use (its CPU affinity, not the host's
# count), at most 4, each with GUNICORN_THREADS threads. A request spends most of its
# time waiting on the database, and a waiting thread costs no CPU, so threads (cheap,
# sharing one app and one connection pool) serve the waits while one process per core
# keeps every core busy with the Python in between. Each worker may hold up to 15
# PostgreSQL connections (a scorecard runs its queries side by side): keep workers x 15,
# plus 15 per jobs process, under the server's max_connections (4 x 15 + 15 is 75).
workers = int(
    os.environ.get("GUNICORN_WORKERS", 2 if DEVELOPMENT else min(len(os.sched_getaffinity(0)), 4))
)
# Threads per worker; at most this many of a worker's requests run at once. A sign-in
# hashes with Argon2id (64 MiB each), so more threads is more memory at the peak.
threads = int(os.environ.get("GUNICORN_THREADS", "4"))
# The threaded worker (gunicorn picks it for threads > 1 anyway: said, not implied).
worker_class = "gthread"
# Seconds a worker's main loop may go silent before gunicorn replaces it. Threaded
# workers answer the master between requests, so this catches a stuck process, not a
# slow page: the reverse proxy's own timeout bounds a request.
timeout = int(os.environ.get("GUNICORN_TIMEOUT", "30"))
# Seconds a worker gets to finish the requests in flight when it is told to stop (a
# restart, an upgrade, max_requests); systemd's TimeoutStopSec must be longer.
graceful_timeout = int(os.environ.get("GUNICORN_GRACEFUL_TIMEOUT", "30"))
# Seconds an idle connection from the proxy stays open for its next request (it waits
# in the worker's poller, not in a thread). The proxy must give up on idle connections
# sooner, or it may send a request down one gunicorn is closing (docs/deploy/Caddyfile).
keepalive = int(os.environ.get("GUNICORN_KEEPALIVE", "5"))
# A worker is replaced, gracefully, after this many requests plus a random part of the
# jitter (so workers do not all restart at once): a guard against a slow leak in the
# portal or a library. A new worker is a fork of the master, which has built the portal
# already: it starts in milliseconds. At 5,000, a desk with 60 pages open (each polling
# every 5 s) on 2 workers replaces each one every 15 minutes or so, a quiet desk once a
# day or less. 0: never.
max_requests = int(os.environ.get("GUNICORN_MAX_REQUESTS", "5000"))
max_requests_jitter = int(os.environ.get("GUNICORN_MAX_REQUESTS_JITTER", "500"))
# Whom gunicorn believes about the scheme (X-Forwarded-Proto): behind a proxy
# (TRUSTED_PROXY_COUNT above 0), the proxy's addresses, comma separated. With no proxy
# this is ignored and only loopback is believed, gunicorn's own default. The portal
# itself trusts X-Forwarded-* from TRUSTED_PROXY_COUNT hops (ProxyFix).
proxy_addresses = os.environ.get("FORWARDED_ALLOW_IPS", "127.0.0.1")
forwarded_allow_ips = proxy_addresses if settings.TRUSTED_PROXY_COUNT else "127.0.0.1,::1"
# systemd (or whatever supervises the service) starts, stops and restarts it; gunicorn's
# control socket would be a second way in, in the service user's home.
control_socket_disable = True

# The portal is built in the master and every worker starts as a copy of it (importing
# and building it took each new worker about 2 s of CPU: at max_requests 5,000, as much
# again as the timeline's 304 polls cost). An upgrade needs a restart, never a HUP.
preload_app = True


def when_ready(server) -> None:  # noqa: ANN001 - gunicorn's Arbiter
    app = getattr(server.app, "callable", None)
    if is_portal(app):
        before_forking(app)


def post_fork(server, worker) -> None:  # noqa: ANN001 - gunicorn's Arbiter and Worker
    app = getattr(server.app, "callable", None)
    if is_portal(app):
        after_fork(app)


accesslog = "-"  # stdout; errors and the portal's own lines go to stderr
errorlog = "-"
loglevel = settings.LOG_LEVEL.lower()


def printable_path(path: str) -> str:
    """The path with its token redacted, and encoded again (PATH_INFO arrives decoded)
    so that no space, quote or line break can split a line or end a token early."""
    return redact_tokens(quote(path, safe="/:@!$&'()*+,;=-._~"))


class PortalLogger(Logger):
    """Access lines without client address or query string, with the request's id.

    gunicorn's access_log_format is not used: its atoms carry the query string and the
    raw path, where link tokens live. Lines are built here from redacted parts only."""

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
