"""Real processes' logs: a patient journey through gunicorn, and the jobs process.

The live link token must appear in no line gunicorn or the portal writes, and every
access line must carry the request id its response carried.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections import Counter

import pytest

from portal.models import Status
from tests.fixtures.desk import make_referral
from tests.fixtures.gunicorn import PROJECT, Browser, csrf_token, process_env
from tests.integration.test_logging import TEXT_LINE
from tests.integration.test_patient_links import DOB, send_link


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
