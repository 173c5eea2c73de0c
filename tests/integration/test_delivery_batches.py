"""Delivery you can count on: stable message keys, claims that cover one send, and one
SMTP connection per batch that survives a drop and isolates a refusal."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from collections.abc import Callable
from datetime import timedelta
from email.utils import parsedate_to_datetime

import pytest
from sqlalchemy import func, select, text

from portal.clock import frozen_at, utcnow
from portal.config import Config
from portal.extensions import db
from portal.models import MessageChannel, MessageStatus, OutboxMessage, Urgency
from portal.notifications import backends
from portal.notifications.backends import DeliveryFailed, backend_for
from portal.notifications.delivery import deliver_due_messages
from portal.notifications.outbox import queue_email, queue_sms
from tests.conftest import SmtpSink, serving_smtp
from tests.fixtures.desk import make_referral

UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")


class ObservingSink(SmtpSink):
    """The suite's SMTP sink, which also notes the connection each message came on and
    can refuse a recipient, answer 421, drop the connection, or act after accepting."""

    def __init__(self) -> None:
        super().__init__()
        self.peers: list[tuple[str, int]] = []  # the client's address, per accepted message
        self.refuse_prefix: str | None = None  # 550 for recipients starting so
        self.reply_421_at: set[int] = set()  # the n-th DATA answered "closing" instead
        self.drop_after: set[int] = set()  # the connection closed after the n-th acceptance
        self.after_accept: Callable[[list[str]], None] | None = None  # gets the recipients
        self.data_commands = 0

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's name
        self.data_commands += 1
        if self.data_commands in self.reply_421_at:
            return "421 4.3.2 Too many messages on this connection"
        if self.refuse_prefix and envelope.rcpt_tos[0].startswith(self.refuse_prefix):
            return "550 5.1.1 No such mailbox"
        reply = await super().handle_DATA(server, session, envelope)
        self.peers.append(session.peer)
        if len(self.messages) in self.drop_after:
            # After the reply goes out, like a server's idle or per-connection limit.
            asyncio.get_running_loop().call_soon(server.transport.close)
        if self.after_accept is not None:
            self.after_accept(envelope.rcpt_tos)
        return reply


@pytest.fixture
def smtp_sink(app):
    """A real SMTP server the app sends to (conftest's, observing more)."""
    with serving_smtp(app, ObservingSink()) as sink:
        yield sink


def queue_updates(app, count: int, prefix: str = "partner") -> dict[str, str]:
    """Queue `count` emails through queue_email; {recipient: message key}."""
    keys = {}
    with app.app_context():
        for index in range(count):
            message = queue_email(
                recipient=f"{prefix}{index}@batch.example",
                template="partner_update",
                reference=f"R-TEST-{index:04d}",
                headline="Accepted",
                outcome="Accepted",
                link="https://referrals.example.org/referrals/R-TEST",
            )
            keys[message.recipient] = message.message_key
        db.session.commit()
    return keys


def statuses(app) -> Counter:
    with app.app_context():
        return Counter(db.session.scalars(select(OutboxMessage.status)))


def connections(sink: ObservingSink) -> list[int]:
    """How many messages each SMTP connection carried, in order."""
    return list(Counter(sink.peers).values())


def test_a_message_key_is_made_when_the_message_is_written(app):
    with app.app_context():
        email = queue_email(
            recipient="someone@example.org",
            template="partner_update",
            reference="R-TEST-0001",
            headline="Accepted",
            outcome="Accepted",
            link="https://referrals.example.org/referrals/R-TEST-0001",
        )
        text_message = queue_sms(
            recipient="+12025550199",
            template="patient_next_step",
            sms_name="Northwind",
            link="https://x.example/p/t",
            phone="+12025550100",
        )
        assert UUID4.match(email.message_key) and UUID4.match(text_message.message_key)
        assert email.message_key != text_message.message_key
        db.session.commit()
        # Rows written any other way get one too.
        other = OutboxMessage(channel=MessageChannel.EMAIL, recipient="x@example.org", body="b")
        db.session.add(other)
        db.session.commit()
        assert UUID4.match(other.message_key)


def test_the_message_key_is_the_message_id_on_every_attempt(app, smtp_sink):
    keys = queue_updates(app, 1)
    ((recipient, key),) = keys.items()
    smtp_sink.refuse_prefix = "partner"
    start = utcnow() + timedelta(seconds=1)
    with app.app_context(), frozen_at(start):
        assert deliver_due_messages().failed == 1
    smtp_sink.refuse_prefix = None
    with app.app_context(), frozen_at(start + timedelta(hours=1)):
        assert deliver_due_messages().sent == 1
        created_at = db.session.scalar(select(OutboxMessage.created_at))
    ((recipients, email),) = smtp_sink.messages
    assert recipients == [recipient]
    assert email["Message-ID"] == f"<{key}@example.org>"  # MAIL_FROM's domain
    # Dated when it was written, not when this attempt went out: the same message.
    assert parsedate_to_datetime(email["Date"]) == created_at.replace(microsecond=0)


def test_a_batch_travels_on_one_smtp_connection(app, smtp_sink):
    app.config["OUTBOX_BATCH_SIZE"] = 3
    queue_updates(app, 7)
    with app.app_context():
        report = deliver_due_messages()
    assert report.sent == 7
    assert connections(smtp_sink) == [3, 3, 1]


@pytest.mark.parametrize("how", ["closed after a message", "421 before the next"])
def test_a_dropped_connection_is_opened_again_once_and_nothing_is_lost(app, smtp_sink, how):
    queue_updates(app, 5)
    if how == "closed after a message":
        smtp_sink.drop_after = {2}
    else:
        smtp_sink.reply_421_at = {3}
    with app.app_context():
        report = deliver_due_messages()
    assert (report.sent, report.failed) == (5, 0)
    assert connections(smtp_sink) == [2, 3]
    assert len(set(smtp_sink.message_ids())) == 5


def test_a_fresh_connection_that_drops_fails_its_message_only(app, smtp_sink):
    queue_updates(app, 3)
    smtp_sink.reply_421_at = {1}  # the batch's very first message
    with app.app_context():
        report = deliver_due_messages()
    assert (report.sent, report.failed) == (2, 1)
    assert statuses(app) == {MessageStatus.SENT: 2, MessageStatus.PENDING: 1}


def test_a_refused_message_fails_alone_and_the_connection_carries_on(app, smtp_sink):
    queue_updates(app, 2, prefix="partner")
    queue_updates(app, 1, prefix="nobody")
    queue_updates(app, 2, prefix="office")
    smtp_sink.refuse_prefix = "nobody"
    with app.app_context():
        report = deliver_due_messages()
        (error,) = db.session.scalars(
            select(OutboxMessage.last_error).where(OutboxMessage.last_error.is_not(None))
        )
    assert (report.sent, report.failed) == (4, 1)
    assert "550" in error
    assert connections(smtp_sink) == [4]


def test_an_unreachable_server_costs_no_attempt_and_the_rest_wait(app, smtp_sink):
    queue_updates(app, 3)
    app.config["MAIL_PORT"] = 1  # nothing listens there
    with app.app_context():
        report = deliver_due_messages()
        rows = db.session.execute(
            select(OutboxMessage.attempts, OutboxMessage.unreachable_tries)
        ).all()
        due_now = db.session.scalar(
            select(func.count(OutboxMessage.id)).where(OutboxMessage.next_attempt_at <= utcnow())
        )
    assert (report.sent, report.failed) == (0, 1)
    assert sorted(rows) == [(0, 0), (0, 0), (0, 1)] and due_now == 2


def test_a_two_hour_mail_outage_loses_no_message(app, desk, smtp_sink):
    """The mail server is unreachable for 2 h 15 min (maintenance, an outage at the
    provider) while the delivery job runs every minute: what was queued meanwhile goes
    out when it is back, though the 8 attempts' backoff adds up to about two hours."""
    start = utcnow()
    with app.app_context():
        with frozen_at(start):
            make_referral(desk, urgency=Urgency.URGENT)  # pages the on-call intake mailbox
        sink_port, app.config["MAIL_PORT"] = app.config["MAIL_PORT"], 1
        for minute in range(135):
            with frozen_at(start + timedelta(minutes=minute, seconds=30)):
                deliver_due_messages()
        waiting = db.session.execute(
            select(OutboxMessage.status, OutboxMessage.attempts, OutboxMessage.next_attempt_at)
        ).all()
        app.config["MAIL_PORT"] = sink_port
        with frozen_at(start + timedelta(hours=2, minutes=20)):
            deliver_due_messages()
        statuses = db.session.scalars(select(OutboxMessage.status)).all()
    assert len(waiting) >= 2
    # Waiting costs no attempt, and the backoff is capped (5 minutes) so the end of the
    # outage is noticed soon.
    assert all(status is MessageStatus.PENDING and tries == 0 for status, tries, _ in waiting)
    cap = timedelta(seconds=app.config["OUTBOX_UNREACHABLE_RETRY_MAX_SECONDS"])
    assert all(due <= start + timedelta(minutes=135) + cap for _, _, due in waiting)
    assert statuses == [MessageStatus.SENT] * len(waiting)
    assert len(smtp_sink.messages) == len(waiting)


def test_a_message_the_server_refuses_is_still_dead_lettered(app, smtp_sink):
    app.config["OUTBOX_MAX_ATTEMPTS"] = 2
    queue_updates(app, 1, prefix="nobody")
    smtp_sink.refuse_prefix = "nobody"  # 550: no such mailbox
    with app.app_context():
        assert deliver_due_messages().failed == 1
        with frozen_at(utcnow() + timedelta(hours=1)):
            assert deliver_due_messages().dead == 1
        message = db.session.scalar(select(OutboxMessage))
    assert message.status is MessageStatus.DEAD and message.attempts == 2
    assert "550" in message.last_error


def test_messages_are_claimed_one_at_a_time_just_before_each_is_sent(app, monkeypatch):
    """A claim covers one send: the messages behind it are not leased while it goes."""
    leased_while_sending = []

    class Probe(backends.RecordingBackend):
        def send(self, message):
            leased_while_sending.append(
                db.session.scalar(
                    select(func.count(OutboxMessage.id)).where(
                        OutboxMessage.status == MessageStatus.PENDING,
                        OutboxMessage.next_attempt_at > utcnow(),
                    )
                )
            )
            super().send(message)

    monkeypatch.setitem(backends.EMAIL_BACKENDS, "probe", Probe)
    app.config["MAIL_BACKEND"] = "probe"
    queue_updates(app, 4)
    with app.app_context():
        assert deliver_due_messages().sent == 4
    assert leased_while_sending == [1, 1, 1, 1]


def test_the_default_claim_outlasts_the_longest_send_and_a_shorter_one_is_logged(
    app, caplog, smtp_sink
):
    assert Config.OUTBOX_CLAIM_SECONDS == (
        backends.SMTP_WAITS_PER_MESSAGE * Config.MAIL_TIMEOUT_SECONDS
    )
    app.config.update(OUTBOX_CLAIM_SECONDS=60, MAIL_TIMEOUT_SECONDS=20)
    with app.app_context():
        deliver_due_messages()
        deliver_due_messages()
    assert caplog.text.count("OUTBOX_CLAIM_SECONDS=60 is shorter than one email") == 1


def test_a_run_starts_no_message_once_the_next_run_is_due(app, smtp_sink):
    queue_updates(app, 2)
    app.config["OUTBOX_DELIVERY_SECONDS"] = 0
    with app.app_context():
        assert deliver_due_messages().tried == 0
    app.config["OUTBOX_DELIVERY_SECONDS"] = 10
    with app.app_context():
        assert deliver_due_messages(limit=1).sent == 1
        assert deliver_due_messages().sent == 1


def test_a_text_gives_the_provider_the_same_idempotency_key_on_every_attempt(app, monkeypatch):
    class FlakyProvider(backends.RecordingBackend):
        """Takes the text, then fails to confirm it the first time (a timeout)."""

        def send(self, message):
            super().send(message)
            if len(self.message_keys) == 1:
                raise DeliveryFailed("provider: timed out")

    monkeypatch.setitem(backends.SMS_BACKENDS, "flaky", FlakyProvider)
    app.config["SMS_BACKEND"] = "flaky"
    with app.app_context():
        message = queue_sms(
            recipient="+12025550199",
            template="patient_next_step",
            sms_name="Northwind",
            link="https://x.example/p/t",
            phone="+12025550100",
        )
        db.session.commit()
        key = message.message_key
        assert deliver_due_messages().failed == 1
        with frozen_at(utcnow() + timedelta(hours=1)):
            assert deliver_due_messages().sent == 1
        assert backend_for(MessageChannel.SMS).message_keys == [key, key]


def test_messages_written_before_the_upgrade_get_a_key_in_the_migration(app):
    from alembic import command

    from portal.commands import alembic_config, upgrade_database

    with app.app_context():
        config = alembic_config()
        with db.engine.begin() as connection:
            config.attributes["connection"] = connection
            command.downgrade(config, "687f8f880c55")
        with db.engine.begin() as connection:
            for index in range(3):
                connection.execute(
                    text(
                        "INSERT INTO outbox_message (created_at, channel, recipient, subject,"
                        " body, status, attempts, next_attempt_at) VALUES (CURRENT_TIMESTAMP,"
                        " 'email', :recipient, 's', 'b', 'pending', 0, CURRENT_TIMESTAMP)"
                    ),
                    {"recipient": f"old{index}@example.org"},
                )
        upgrade_database()
        keys = list(db.session.scalars(select(OutboxMessage.message_key)))
    assert len(keys) == 3 and len(set(keys)) == 3
    assert all(UUID4.match(key) for key in keys), keys
