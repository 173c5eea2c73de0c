"""The transactional outbox and its delivery over real SMTP."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from portal.clock import frozen_at, utcnow
from portal.extensions import db
from portal.models import MessageChannel, MessageStatus, OutboxMessage, Referral, Status
from portal.notifications.backends import backend_for
from portal.notifications.delivery import deliver_due_messages
from portal.referrals import services
from tests.fixtures.desk import make_referral, user
from tests.fixtures.privacy import find_patient_data_in_messages


def messages(app) -> list[OutboxMessage]:
    with app.app_context():
        rows = list(db.session.scalars(select(OutboxMessage).order_by(OutboxMessage.id)))
        db.session.expunge_all()
        return rows


def test_a_message_is_written_in_the_same_transaction_as_its_change(app, desk):
    with app.app_context():
        reference = make_referral(desk, Status.IN_REVIEW)
        before = len(messages(app))
        referral = db.session.scalar(select(Referral).filter_by(reference=reference))
        services.accept(referral, user(desk.clinical), expected_version=None, provider="Dr. P")
        db.session.rollback()  # the change is abandoned...
    assert len(messages(app)) == before  # ...and so is its message
    with app.app_context():
        referral = db.session.scalar(select(Referral).filter_by(reference=reference))
        services.accept(referral, user(desk.clinical), expected_version=None, provider="Dr. P")
        db.session.commit()
    assert len(messages(app)) == before + 1


def test_due_messages_are_delivered_over_smtp_once(app, desk, smtp_sink):
    with app.app_context():
        reference = make_referral(desk)
        report = deliver_due_messages()
        assert report.sent == 1
        assert deliver_due_messages().sent == 0  # a second run sends nothing again
    assert len(smtp_sink.messages) == 1
    recipients, email = smtp_sink.messages[0]
    assert recipients == ["contact@alpha.example"]
    assert email["Subject"] == f"Referral {reference}: Referral received"
    assert email["From"] == app.config["MAIL_FROM"]
    body = email.get_content()
    assert f"/referrals/{reference}" in body and "Quillfeather" not in body
    (message,) = messages(app)
    assert message.status is MessageStatus.SENT and message.sent_at is not None


def test_a_failed_delivery_is_retried_with_backoff_and_never_lost(app, desk, smtp_sink):
    app.config["MAIL_PORT"] = 1  # nothing listens there
    start = utcnow() + timedelta(seconds=1)
    with app.app_context():
        make_referral(desk)
        with frozen_at(start):
            assert deliver_due_messages().failed == 1
        (message,) = messages(app)
        # An unreachable server uses up none of the message's attempts (see
        # test_delivery_batches: an outage loses no message).
        assert message.status is MessageStatus.PENDING and message.attempts == 0
        assert message.next_attempt_at == start + timedelta(seconds=60)
        assert "SMTP" in message.last_error
        with frozen_at(start + timedelta(seconds=30)):
            assert deliver_due_messages().failed == 0  # not due yet
        with frozen_at(start + timedelta(seconds=61)):
            assert deliver_due_messages().failed == 1
        (message,) = messages(app)
        assert message.next_attempt_at - (start + timedelta(seconds=61)) == timedelta(seconds=120)
        app.config["MAIL_PORT"] = smtp_sink.port
        with frozen_at(start + timedelta(hours=1)):
            assert deliver_due_messages().sent == 1
    assert len(smtp_sink.messages) == 1


def test_a_message_claimed_by_another_runner_is_not_sent_twice(app, desk):
    from portal.notifications.delivery import claim_due_messages

    with app.app_context():
        make_referral(desk)
        (message_id,) = [m.id for m in messages(app)]
        assert claim_due_messages(10) == [message_id]
        assert claim_due_messages(10) == []  # the second runner gets nothing
        assert deliver_due_messages().sent == 0  # leased until the claim expires
        with frozen_at(utcnow() + timedelta(seconds=app.config["OUTBOX_CLAIM_SECONDS"] + 1)):
            assert deliver_due_messages().sent == 1  # the runner died: retried once


def test_sms_goes_through_the_recording_provider(app, desk):
    with app.app_context():
        db.session.add(
            OutboxMessage(channel=MessageChannel.SMS, recipient="+12025550199", body="Hello")
        )
        db.session.commit()
        assert deliver_due_messages().sent == 1
        assert backend_for(MessageChannel.SMS).sent == [("+12025550199", "", "Hello")]


def test_the_privacy_scan_catches_a_message_naming_a_patient(app, desk):
    with app.app_context():
        make_referral(desk)
        db.session.add(
            OutboxMessage(
                channel=MessageChannel.EMAIL,
                recipient="x@example.org",
                subject="About Zephyrine",
                body="born 03/14/1961, call (202) 555-0143",
            )
        )
        db.session.commit()
        leaks = find_patient_data_in_messages()
        assert len(leaks) == 3
        db.session.query(OutboxMessage).filter(OutboxMessage.subject.like("About%")).delete()
        db.session.commit()


def test_the_development_outbox_shows_every_message(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk)
    page = client_for(desk.intake).get("/dev/outbox").get_data(as_text=True)
    assert f"Referral {reference}: Referral received" in page
    assert "contact@alpha.example" in page


def test_production_has_no_outbox_route(database_url):
    from portal import create_app
    from portal.config import Config

    class Production(Config):
        SECRET_KEY = "a-production-key-of-more-than-32-bytes-" + "x" * 8

    app = create_app(Production, DATABASE_URL=database_url)
    assert not [rule for rule in app.url_map.iter_rules() if rule.rule.startswith("/dev")]
    assert app.test_client().get("/dev/outbox").status_code == 404


def test_the_development_outbox_is_for_signed_in_staff_only(client, client_for, desk):
    assert client.get("/dev/outbox").status_code == 302  # to sign in
    assert client_for(desk.partner_a).get("/dev/outbox").status_code == 404
    assert client_for(desk.admin).get("/dev/outbox").status_code == 200


@pytest.mark.parametrize(
    ("status", "headline"),
    [
        (Status.NEEDS_INFO, "More information needed"),
        (Status.ACCEPTED, "Accepted"),
        (Status.DECLINED, "Declined: not eligible"),
        (Status.REDIRECTED, "Redirected to another service"),
        (Status.SCHEDULED, "First visit scheduled"),
        (Status.UNREACHABLE, "Closed: we could not reach the patient"),
    ],
)
def test_partners_are_told_of_each_milestone(app, desk, status, headline):
    with app.app_context():
        reference = make_referral(desk, status)
    to_partner = [m for m in messages(app) if m.recipient == "contact@alpha.example"]
    assert f"Referral {reference}: {headline}" in [m.subject for m in to_partner]
