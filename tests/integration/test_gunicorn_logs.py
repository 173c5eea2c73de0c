"""Real processes' logs: a patient journey through gunicorn, and the jobs process.

The live link token must appear in no line gunicorn or the portal writes, and every
access line must carry the request id its response carried.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from http.cookiejar import CookieJar
from pathlib import Path
from urllib.error import HTTPError
from urllib.parse import urlencode
from urllib.request import HTTPCookieProcessor, HTTPRedirectHandler, Request, build_opener

import pytest

from portal.models import Status
from portal.request_ids import HEADER
from tests.fixtures.desk import make_referral
from tests.integration.test_logging import TEXT_LINE
from tests.integration.test_patient_links import DOB, send_link

PROJECT = Path(__file__).resolve().parents[2]


def process_env(app, tmp_path: Path, **settings: str) -> dict[str, str]:
    """A deployed process's environment, against the test's database and key."""
    return {
        **os.environ,
        "PORTAL_ENV": "development",
        "SECRET_KEY": app.config["SECRET_KEY"],
        "DATABASE_URL": app.config["DATABASE_URL"],
        "LOG_LEVEL": "INFO",
        # gunicorn's control socket lives here: runs in parallel must not share one.
        "XDG_RUNTIME_DIR": str(tmp_path),
        **settings,
    }


@dataclass
class Server:
    process: subprocess.Popen
    url: str
    stdout: Path
    stderr: Path

    def stop(self) -> tuple[str, str]:
        """Stop gunicorn gracefully; what it wrote to stdout and to stderr."""
        if self.process.poll() is None:
            self.process.terminate()
        self.process.wait(timeout=10)
        return self.stdout.read_text(), self.stderr.read_text()


@pytest.fixture
def gunicorn(app, tmp_path):
    """Start `gunicorn -c gunicorn.conf.py wsgi:app` on a free port: `gunicorn(LOG_FORMAT=...)`."""
    servers = []

    def start(**settings: str) -> Server:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        stdout, stderr = tmp_path / "gunicorn.out", tmp_path / "gunicorn.err"
        with stdout.open("w") as out, stderr.open("w") as err:
            process = subprocess.Popen(
                [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"],
                cwd=PROJECT,
                # The only departure from gunicorn.conf.py: a port of the test's own.
                env=process_env(
                    app, tmp_path, GUNICORN_CMD_ARGS=f"--bind 127.0.0.1:{port}", **settings
                ),
                stdout=out,
                stderr=err,
            )
        server = Server(process, f"http://127.0.0.1:{port}", stdout, stderr)
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.process.poll() is None:
            server.process.kill()
            server.process.wait(timeout=10)


class _KeepRedirects(HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # the test follows them itself, to see every response


@dataclass
class Browser:
    """urllib with a cookie jar, noting the request id of every response it gets."""

    base: str
    request_ids: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.opener = build_opener(HTTPCookieProcessor(CookieJar()), _KeepRedirects())

    def open(self, path: str, form: dict | None = None) -> tuple[int, str]:
        data = urlencode(form).encode() if form is not None else None
        try:
            request = Request(self.base + path, data=data)  # noqa: S310 - our local server
            response = self.opener.open(request, timeout=10)
        except HTTPError as error:
            response = error
        with response:
            self.request_ids.append(response.headers[HEADER])
            return response.status, response.read().decode()

    def wait_until_up(self, server: Server, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.open("/sign-in")
                return
            except OSError:  # refused, or reset while a worker boots
                if server.process.poll() is not None or time.monotonic() > deadline:
                    raise AssertionError(server.stop()) from None
                time.sleep(0.1)


def csrf_token(page: str) -> str:
    return re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page).group(1)


def access_lines(stdout: str, log_format: str) -> list[dict]:
    if log_format == "json":
        return [json.loads(line) for line in stdout.splitlines()]
    return [TEXT_LINE.fullmatch(line).groupdict() for line in stdout.splitlines()]


@pytest.mark.parametrize("log_format", ["text", "json"])
def test_a_patient_journey_through_gunicorn_logs_no_token_and_every_request_id(
    app, desk, client_for, gunicorn, log_format
):
    with app.app_context():
        reference = make_referral(desk, Status.ACCEPTED)
    link = send_link(app, client_for(desk.intake), reference)
    token = link.removeprefix("/p/")
    server = gunicorn(LOG_FORMAT=log_format)
    browser = Browser(server.url)
    browser.wait_until_up(server)

    status, page = browser.open(link)
    assert status == 200 and "Confirm it is you" in page
    status, _ = browser.open(f"{link}/verify", {**DOB, "csrf_token": csrf_token(page)})
    assert status == 303
    status, page = browser.open(link)
    slot = re.search(r'value="(slot-\d+)"', page).group(1)
    form = {"choice": slot, "contact": "sms", "csrf_token": csrf_token(page)}
    assert browser.open(f"{link}/answer", form)[0] == 303
    assert "You are booked" in browser.open(link)[1]
    # Other tokens the portal carries: in an invitation's path, in a reset link's query.
    browser.open("/invitations/invitation-token-4f1e9")
    browser.open("/password/reset?token=reset-token-77ad2")
    stdout, stderr = server.stop()

    everything = stdout + stderr
    # Not the token, nor any of its three parts (payload, timestamp, signature).
    for secret in (*token.split("."), "invitation-token-4f1e9", "reset-token-77ad2"):
        assert secret not in everything
    assert "Quillfeather" not in everything  # the patient's name
    lines = access_lines(stdout, log_format)
    assert Counter(line["request_id"] for line in lines) == Counter(browser.request_ids)
    messages = [line["message"] for line in lines]
    for expected in (
        "GET /p/[token] 200",
        "POST /p/[token]/verify 303",
        "POST /p/[token]/answer 303",
        "GET /invitations/[token] ",
        "GET /password/reset ",
    ):
        assert any(message.startswith(expected) for message in messages), messages
    if log_format == "json":
        assert {line["logger"] for line in lines} == {"gunicorn.access"}
        assert all(
            set(line) >= {"method", "path", "status", "bytes", "duration_ms"} for line in lines
        )
        # gunicorn's own lines and the portal's are JSON too: one format per deployment.
        others = [json.loads(line) for line in stderr.splitlines()]
        assert any(line["message"].startswith("Booting worker") for line in others)


def test_the_jobs_process_writes_the_same_lines(app, tmp_path):
    log_file = tmp_path / "jobs.log"
    with log_file.open("w") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "jobs"],
            cwd=PROJECT,
            env=process_env(app, tmp_path, LOG_FORMAT="json"),
            stdout=log,
            stderr=log,
        )
    try:
        deadline = time.monotonic() + 15
        while "jobs process started" not in log_file.read_text():
            assert process.poll() is None and time.monotonic() < deadline, log_file.read_text()
            time.sleep(0.1)
    finally:
        # Killed, not terminated: a SIGTERM landing while the scheduler submits a job can
        # deadlock the process (its handler shuts the scheduler down in the same thread).
        process.kill()
        process.wait(timeout=10)
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    started = next(line for line in lines if line["message"].startswith("jobs process started"))
    assert started["logger"] == "jobs" and started["level"] == "INFO"
    assert all(line["component"] == "jobs" and line["request_id"] == "-" for line in lines)
