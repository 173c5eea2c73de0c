"""Real jobs processes: killed mid-send, restarted, doubled. Each message goes once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from portal.extensions import db
from portal.models import MessageChannel, MessageStatus, OutboxMessage

PROJECT = Path(__file__).resolve().parents[2]
# The messages these tests queue; the jobs' own mail (the weekly summary) goes elsewhere.
TEST_DOMAIN = "jobs-test.example"


@pytest.fixture
def start_jobs(app, smtp_sink, tmp_path):
    """Start `python -m jobs` processes against the test's database and SMTP sink."""
    processes = []

    def start(name: str, **settings: str):
        log = (tmp_path / f"{name}.log").open("w+")
        env = {
            **os.environ,
            "PORTAL_ENV": "development",
            "SECRET_KEY": app.config["SECRET_KEY"],
            "DATABASE_URL": app.config["DATABASE_URL"],
            "MAIL_BACKEND": "smtp",
            "MAIL_HOST": "127.0.0.1",
            "MAIL_PORT": str(smtp_sink.port),
            "MAIL_USE_TLS": "0",
            "OUTBOX_DELIVERY_SECONDS": "1",
            "OUTBOX_CLAIM_SECONDS": "2",
            "SLA_SWEEP_SECONDS": "3600",
            "FOLLOW_UP_SECONDS": "3600",
            **settings,
        }
        process = subprocess.Popen(
            [sys.executable, "-m", "jobs"], cwd=PROJECT, env=env, stdout=log, stderr=log
        )
        process.log = log
        processes.append(process)
        return process

    yield start
    for process in processes:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        process.log.close()


def log_of(process) -> str:
    process.log.flush()
    process.log.seek(0)
    return process.log.read()


def queue_messages(app, count: int) -> None:
    with app.app_context():
        db.session.add_all(
            OutboxMessage(
                channel=MessageChannel.EMAIL,
                recipient=f"partner{index}@{TEST_DOMAIN}",
                subject=f"Update {index}",
                body="Something changed; sign in to see it.",
            )
            for index in range(count)
        )
        db.session.commit()


def wait_until(condition, timeout: float = 60, interval: float = 0.1, logs=()) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting\n" + "\n".join(log_of(p) for p in logs))
        time.sleep(interval)


def sent_count(app) -> int:
    with app.app_context():
        count = db.session.scalar(
            select(func.count(OutboxMessage.id)).where(
                OutboxMessage.status == MessageStatus.SENT,
                OutboxMessage.recipient.like(f"%@{TEST_DOMAIN}"),
            )
        )
        db.session.remove()
        return count


def test_a_process_killed_mid_send_and_restarted_delivers_each_message_once(
    app, smtp_sink, start_jobs
):
    queue_messages(app, 10)
    smtp_sink.hold_at = 4  # the 4th delivery hangs: the process is killed inside it
    smtp_sink.hold_suffix = TEST_DOMAIN
    first = start_jobs("first")
    assert smtp_sink.holding.wait(60), log_of(first)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=10)
    smtp_sink.release.set()  # the sink never accepted the 4th message
    assert len(smtp_sink.message_ids(TEST_DOMAIN)) == 3

    second = start_jobs("second")
    wait_until(lambda: sent_count(app) == 10, logs=[first, second])
    time.sleep(2.5)  # a lease's length: nothing more may arrive
    second.terminate()
    ids = smtp_sink.message_ids(TEST_DOMAIN)
    assert len(ids) == 10 and len(set(ids)) == 10, Counter(ids).most_common(3)


@pytest.mark.skipif(
    "not config.getoption('--database-url') "
    "or not config.getoption('--database-url').startswith('postgresql')",
    reason="two runners sharing the work is a PostgreSQL feature; the SQLite case is below",
)
def test_two_processes_on_postgresql_deliver_each_message_exactly_once(app, smtp_sink, start_jobs):
    queue_messages(app, 120)
    smtp_sink.delay = 0.01
    first = start_jobs("first", OUTBOX_BATCH_SIZE="10")
    second = start_jobs("second", OUTBOX_BATCH_SIZE="10")
    wait_until(lambda: sent_count(app) == 120, timeout=120)
    time.sleep(2.5)
    ids = smtp_sink.message_ids(TEST_DOMAIN)
    assert len(ids) == 120 and len(set(ids)) == 120, Counter(ids).most_common(3)
    shares = [log_of(p).count(" sent by ") for p in (first, second)]
    assert sum(shares) >= 120  # and the weekly summary, which one of them sent
    assert all(share > 0 for share in shares), shares  # the work really was shared


def test_on_sqlite_a_second_process_stays_idle_and_says_so(app, smtp_sink, start_jobs):
    if make_url(app.config["DATABASE_URL"]).get_backend_name() != "sqlite":
        pytest.skip("PostgreSQL runs several jobs processes side by side (test above)")
    first = start_jobs("first")
    wait_until(lambda: "jobs process started" in log_of(first), timeout=30)
    second = start_jobs("second")
    wait_until(lambda: "staying idle" in log_of(second), timeout=30)
    assert "jobs process started" not in log_of(second)
    queue_messages(app, 5)
    wait_until(lambda: sent_count(app) == 5)
    assert " sent by " not in log_of(second)

    first.terminate()
    first.wait(timeout=10)
    wait_until(lambda: "takes over" in log_of(second), timeout=30)
    queue_messages(app, 3)
    wait_until(lambda: sent_count(app) == 8)
    assert len(set(smtp_sink.message_ids(TEST_DOMAIN))) == 8
