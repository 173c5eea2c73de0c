"""kill -9 of a real jobs process, again and again, mid-delivery: every message arrives,
and a message sent twice is recognisably the same message, at most once per kill.

Runs on SQLite and, with TEST_DATABASE_URL, on PostgreSQL.
"""

from __future__ import annotations

import os
import signal
import time
from collections import defaultdict

from sqlalchemy import select

from portal.extensions import db
from portal.models import OutboxMessage
from tests.integration import test_delivery_batches, test_jobs_processes
from tests.integration.test_jobs_processes import (
    TEST_DOMAIN,
    log_of,
    queue_messages,
    sent_count,
    wait_until,
)

# The fixtures this test shares: the observing SMTP sink, and jobs processes started
# against the test's database and that sink.
smtp_sink = test_delivery_batches.smtp_sink
start_jobs = test_jobs_processes.start_jobs

MESSAGES = 300


def test_killed_again_and_again_every_message_arrives_and_a_resend_is_the_same_message(
    app, smtp_sink, start_jobs
):
    queue_messages(app, MESSAGES)
    with app.app_context():
        keys = dict(
            db.session.execute(select(OutboxMessage.recipient, OutboxMessage.message_key)).all()
        )
        db.session.remove()
    smtp_sink.delay = 0.005  # about 100 messages a second: the kills land mid-delivery
    started = time.monotonic()
    processes, kills = [], 0

    def received() -> int:
        return sum(r[0].endswith(TEST_DOMAIN) for r, _ in smtp_sink.messages)

    kill_at: int | None = None

    def kill_right_after_acceptance(recipients: list[str]) -> None:
        """Kill the sender after the sink took a message, before it hears the reply:
        the crash that always leaves a message to be sent again."""
        if recipients[0].endswith(TEST_DOMAIN) and received() == kill_at:
            os.kill(processes[-1].pid, signal.SIGKILL)
            processes[-1].wait(timeout=10)

    smtp_sink.after_accept = kill_right_after_acceptance
    # Two kills at the worst moment, two wherever the process happens to be.
    for threshold, at_the_worst_moment in ((40, True), (100, False), (170, True), (230, False)):
        kill_at = threshold if at_the_worst_moment else None
        processes.append(start_jobs(f"run{len(processes) + 1}"))
        wait_until(lambda: received() >= threshold, timeout=60, logs=processes)  # noqa: B023
        if not at_the_worst_moment:
            processes[-1].send_signal(signal.SIGKILL)
        processes[-1].wait(timeout=10)
        assert processes[-1].returncode == -signal.SIGKILL
        kills += 1
    assert received() < MESSAGES, "the last kill came after delivery had finished"

    processes.append(start_jobs(f"run{len(processes) + 1}"))
    wait_until(lambda: sent_count(app) == MESSAGES, timeout=60, logs=processes)
    time.sleep(2.5)  # a claim's length (OUTBOX_CLAIM_SECONDS): nothing more may arrive
    processes[-1].terminate()
    elapsed = time.monotonic() - started

    ids_by_recipient = defaultdict(list)
    for recipients, email in smtp_sink.messages:
        if all(r.endswith(TEST_DOMAIN) for r in recipients):
            ids_by_recipient[recipients[0]].append(email["Message-ID"])
    assert set(ids_by_recipient) == set(keys)  # every message arrived at least once
    for recipient, message_ids in ids_by_recipient.items():
        # Every copy carries the message's own key: the receiving side can drop a repeat.
        assert set(message_ids) == {f"<{keys[recipient]}@example.org>"}, message_ids
    duplicates = received() - MESSAGES
    print(f"{kills} kills, {duplicates} duplicates, {elapsed:.1f} s")
    # A kill repeats at most the one message in flight; the two right after acceptance
    # always do.
    assert 2 <= duplicates <= kills, (duplicates, kills, log_of(processes[-1]))
