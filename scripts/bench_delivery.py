"""The delivery benchmark: how fast one jobs process empties the outbox into SMTP.

    .venv/bin/python scripts/bench_delivery.py                      # SQLite
    .venv/bin/python scripts/bench_delivery.py --url postgresql://...  # and PostgreSQL

For each database it migrates a scratch database (PostgreSQL's is emptied first),
queues the messages through `queue_email` like the portal does, starts a local aiosmtpd
sink in this process and ONE `python -m jobs` process with the default delivery
settings, and times it from start until the sink holds every message. Target: 1,000
messages in under 30 s by one process on 2 cores. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import itertools
import os
import resource
import secrets
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

PROJECT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(PROJECT))

from sqlalchemy import func, select  # noqa: E402

from portal import create_app  # noqa: E402
from portal.commands import upgrade_database  # noqa: E402
from portal.config import TestConfig  # noqa: E402
from portal.database import empty_postgresql  # noqa: E402
from portal.extensions import db  # noqa: E402
from portal.models import MessageStatus, OutboxMessage  # noqa: E402
from portal.notifications.outbox import queue_email  # noqa: E402

BENCH_DOMAIN = "bench-delivery.example"


class Sink:
    """An SMTP server that keeps the Message-ID and arrival time of each message."""

    def __init__(self) -> None:
        self.arrivals: list[tuple[float, str]] = []
        self.lock = threading.Lock()

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        if all(r.endswith(BENCH_DOMAIN) for r in envelope.rcpt_tos):
            message_id = next(
                (
                    line.split(b":", 1)[1].strip().decode()
                    for line in envelope.content.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
                    if line.lower().startswith(b"message-id:")
                ),
                "",
            )
            with self.lock:
                self.arrivals.append((time.monotonic(), message_id))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def prepare(url: str, count: int) -> None:
    """Migrate the database at `url` and queue `count` emails in it."""
    if url.startswith("postgresql"):
        empty_postgresql(url)
    app = create_app(TestConfig, DATABASE_URL=url)
    with app.app_context():
        upgrade_database()
        for index in range(count):
            queue_email(
                recipient=f"partner{index}@{BENCH_DOMAIN}",
                template="partner_update",
                reference=f"R-BNCH-{index:04d}",
                headline="Accepted",
                outcome="Accepted",
                link=f"https://referrals.example.org/referrals/R-BNCH-{index:04d}",
            )
        db.session.commit()
        db.session.remove()
        db.engine.dispose()


def sent_in_database(url: str) -> int:
    app = create_app(TestConfig, DATABASE_URL=url)
    with app.app_context():
        count = db.session.scalar(
            select(func.count(OutboxMessage.id)).where(
                OutboxMessage.status == MessageStatus.SENT,
                OutboxMessage.recipient.like(f"%@{BENCH_DOMAIN}"),
            )
        )
        db.session.remove()
        db.engine.dispose()
        return count


def run(name: str, url: str, count: int, workdir: Path) -> dict:
    from aiosmtpd.controller import Controller

    print(f"{name}: queueing {count:,} messages ...", flush=True)
    prepare(url, count)
    sink = Sink()
    port = free_port()
    controller = Controller(sink, hostname="127.0.0.1", port=port)
    controller.start()
    env = {
        **os.environ,
        "PORTAL_ENV": "development",
        "SECRET_KEY": secrets.token_urlsafe(48),
        "DATABASE_URL": url,
        "MAIL_BACKEND": "smtp",
        "MAIL_HOST": "127.0.0.1",
        "MAIL_PORT": str(port),
        "MAIL_USE_TLS": "0",
        "JOBS_LOCK_FILE": str(workdir / f"{name}.jobs.lock"),
    }
    log_path = workdir / f"{name}-jobs.log"
    cpu_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with log_path.open("w") as log:
        started = time.monotonic()
        process = subprocess.Popen(
            [sys.executable, "-m", "jobs"], cwd=PROJECT, env=env, stdout=log, stderr=log
        )
        try:
            while len(sink.arrivals) < count:
                if process.poll() is not None:
                    raise SystemExit(f"the jobs process stopped; see {log_path}")
                if time.monotonic() - started > 600:
                    raise SystemExit(f"{len(sink.arrivals)} of {count} after 10 minutes")
                time.sleep(0.02)
            finished = time.monotonic()
            # The last message's row is marked sent just after the sink's reply.
            deadline = time.monotonic() + 10
            while sent_in_database(url) < count and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            process.terminate()
            process.wait(timeout=30)
            controller.stop()
    cpu_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    arrivals = sorted(at for at, _ in sink.arrivals)
    message_ids = [message_id for _, message_id in sink.arrivals]
    delivering = arrivals[-1] - arrivals[0]
    return {
        "database": name,
        "messages": count,
        "received": len(message_ids),
        "distinct": len(set(message_ids)),
        "marked sent": sent_in_database(url),
        "start to last message, s": finished - started,
        "start to first message, s": arrivals[0] - started,
        "first to last message, s": delivering,
        "messages/s while delivering": (count - 1) / delivering if delivering else float("inf"),
        "messages/s from start": count / (finished - started),
        "longest pause between two, s": max(b - a for a, b in itertools.pairwise(arrivals)),
        "CPU of the jobs process, s": (cpu_after.ru_utime - cpu_before.ru_utime)
        + (cpu_after.ru_stime - cpu_before.ru_stime),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=1000)
    parser.add_argument("--url", help="a PostgreSQL URL to run on as well (it is emptied)")
    parser.add_argument("--only-postgresql", action="store_true")
    args = parser.parse_args()
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-delivery-") as workdir:
        if not args.only_postgresql:
            url = f"sqlite:///{Path(workdir) / 'portal.db'}"
            results.append(run("sqlite", url, args.messages, Path(workdir)))
        if args.url:
            results.append(run("postgresql", args.url, args.messages, Path(workdir)))
    print(f"\nDelivery of {args.messages:,} emails by one jobs process ({os.cpu_count()} cores)")
    for key in results[0]:
        cells = [
            f"{result[key]:.2f}" if isinstance(result[key], float) else str(result[key])
            for result in results
        ]
        print(f"  {key:<30} " + "  ".join(f"{cell:>12}" for cell in cells))
    if any(r["distinct"] != r["messages"] or r["marked sent"] != r["messages"] for r in results):
        raise SystemExit("some message was lost or not marked sent")


if __name__ == "__main__":
    main()
