"""The deployment guide, followed: migrate, start the two services, probe, stop.

docs/deploy.md's steps with docs/deploy/portal.env.example's environment, its
placeholders filled in (a fresh database, a generated key, a free port, the test's SMTP
sink), and the commands the systemd units in docs/deploy/ run. On SQLite, and on
PostgreSQL in the suite's second pass.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest

from tests.fixtures.gunicorn import PROJECT, Browser, Server
from tests.integration.test_backups import fresh_database_url  # noqa: F401 - a fixture
from tests.integration.test_jobs_processes import log_of, wait_until
from tests.unit.test_settings_table import every_setting, example_environment

UNITS = PROJECT / "docs" / "deploy"


def service_command(unit: str) -> list[str]:
    """What a unit's ExecStart runs, with this test's Python for the virtualenv's."""
    text = (UNITS / unit).read_text()
    assert "WorkingDirectory=/srv/portal\n" in text  # the checkout: PROJECT here
    (line,) = (line for line in text.splitlines() if line.startswith("ExecStart="))
    program, *arguments = shlex.split(line.removeprefix("ExecStart="))
    assert program.startswith("/srv/portal/.venv/bin/")
    name = Path(program).name
    return (
        [sys.executable, *arguments]
        if name == "python"
        else [sys.executable, "-m", name, *arguments]
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def environment(fresh_database_url, smtp_sink, tmp_path):  # noqa: F811 - the fixture above
    """/etc/portal/portal.env as the guide has it filled in, for this test's database."""
    settings = {setting.name for _, setting in every_setting()}
    inherited = {name: value for name, value in os.environ.items() if name not in settings}
    filled_in = example_environment()
    del filled_in["MAIL_USERNAME"], filled_in["MAIL_PASSWORD"]  # the sink takes no AUTH
    return {
        **inherited,
        **filled_in,
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DATABASE_URL": fresh_database_url,
        "MAIL_HOST": "127.0.0.1",
        "MAIL_PORT": str(smtp_sink.port),
        "MAIL_USE_TLS": "0",
        "BACKUP_DIR": str(tmp_path / "backups"),
        "BACKUP_HOUR": "0",  # always past: the first night's backup is taken at start
        "GUNICORN_BIND": f"127.0.0.1:{free_port()}",
        "GUNICORN_WORKERS": "2",  # whatever the machine's cores
        "JOBS_HEARTBEAT_SECONDS": "1",
    }


@pytest.fixture
def start(environment, tmp_path):
    """Start a service's command with the environment file: `start("portal-web.service")`."""
    processes = []

    def run(unit: str) -> subprocess.Popen:
        log = (tmp_path / f"{unit}.log").open("w+")
        command = service_command(unit)
        process = subprocess.Popen(  # noqa: S603 - the unit's own command
            command, cwd=PROJECT, env=environment, stdout=log, stderr=log
        )
        process.log = log
        processes.append(process)
        return process

    yield run
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        process.log.close()


def get(url: str, **headers: str) -> tuple[int, dict, dict]:
    try:
        response = urlopen(Request(url, headers=headers), timeout=10)  # noqa: S310 - ours
    except HTTPError as error:
        response = error
    with response:
        return response.status, json.loads(response.read()), dict(response.headers)


def test_the_portal_runs_as_the_deployment_guide_says(environment, start, tmp_path):
    migrated = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "wsgi", "db", "upgrade"],
        cwd=PROJECT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert migrated.returncode == 0, migrated.stderr
    assert migrated.stdout.startswith("Created the schema at revision "), migrated.stdout

    web = start("portal-web.service")
    url = f"http://{environment['GUNICORN_BIND']}"
    server = Server(web, url, Path(web.log.name), Path(web.log.name))
    Browser(url).wait_until_up(server, timeout=20)
    # The proxy's headers, as Caddy sends them: the portal now knows the request was https.
    proxied = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"}
    status, body, headers = get(f"{url}/healthz", **proxied)
    assert (status, body) == (200, {"status": "ok"})
    assert headers["Strict-Transport-Security"].startswith("max-age=")
    status, body, _ = get(f"{url}/readyz")
    assert status == 503 and body["checks"] == {"database": "ok", "schema": "ok", "jobs": "fail"}

    jobs = start("portal-jobs.service")
    wait_until(lambda: get(f"{url}/readyz")[0] == 200, timeout=30, interval=0.5, logs=[jobs, web])
    assert get(f"{url}/readyz")[1] == {
        "status": "ok",
        "checks": {"database": "ok", "schema": "ok", "jobs": "ok"},
    }
    # The first night's backup, into BACKUP_DIR (the jobs process runs one job at a time).
    backups = Path(environment["BACKUP_DIR"])
    wait_until(lambda: any(backups.glob("portal-backup-*.tar")), timeout=20, logs=[jobs])

    # systemctl stop: SIGTERM, then each must exit by itself.
    for process in (web, jobs):
        process.send_signal(signal.SIGTERM)
    for process in (web, jobs):
        assert process.wait(timeout=20) == 0, log_of(process)
    assert "jobs process stopped" in log_of(jobs)
    assert "Traceback" not in log_of(web) + log_of(jobs)
