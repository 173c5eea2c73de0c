"""Production without an SMS provider: patients are written to by email, links are not
offered by text, and a text queued anyway is never marked sent."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal import create_app
from portal.config import Config, ConfigurationError
from portal.extensions import db
from portal.models import (
    ContactMethod,
    MessageChannel,
    MessageStatus,
    OutboxMessage,
    Referral,
    Status,
)
from portal.notifications.delivery import deliver_due_messages
from portal.notifications.outbox import queue_sms
from portal.notifications.referrals import message_patient
from tests.fixtures.desk import make_referral
from tests.integration.test_patient_links import load


@pytest.fixture
def no_sms(app):
    app.config["SMS_BACKEND"] = "none"
    app.extensions.pop("portal.notifications.backend.sms", None)
    return app


def test_production_refuses_the_recording_sms_backend():
    with pytest.raises(ConfigurationError, match="SMS_BACKEND=record"):
        Config.check({"SECRET_KEY": "k" * 64, "SMS_BACKEND": "record"})


def test_an_unknown_sms_backend_is_refused_at_start(database_url):
    with pytest.raises(ConfigurationError, match="SMS_BACKEND='twilio'"):
        from portal.config import TestConfig

        create_app(TestConfig, DATABASE_URL=database_url, SMS_BACKEND="twilio")


def test_patients_who_prefer_texts_are_emailed_instead(no_sms, desk):
    with no_sms.app_context():
        reference = make_referral(desk, Status.ACCEPTED, preferred_contact=ContactMethod.SMS)
        referral = db.session.scalar(select(Referral).filter_by(reference=reference))
        message_patient(referral, ContactMethod.SMS, "patient_reminder", link="https://x/p/a")
        db.session.commit()
        (message,) = db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.recipient == referral.patient_email)
        ).all()
    assert message.channel is MessageChannel.EMAIL


def test_a_link_cannot_be_sent_by_text(no_sms, client_for, desk):
    with no_sms.app_context():
        reference = make_referral(desk, Status.ACCEPTED)
    response = client_for(desk.intake).post(
        f"/referrals/{reference}/actions/send_patient_link",
        data={"version": load(no_sms, reference).version, "via": "sms", "mode": "video"},
    )
    assert response.status_code == 409
    assert "No text message provider is set up" in response.get_data(as_text=True)


def test_a_text_queued_anyway_fails_instead_of_being_marked_sent(no_sms, desk):
    with no_sms.app_context():
        queue_sms(
            recipient="+12025550143",
            template="patient_reminder",
            sms_name="N",
            phone="(202) 555-0100",
            link="https://x/p/a",
        )
        db.session.commit()
        report = deliver_due_messages()
        message = db.session.scalar(select(OutboxMessage))
    assert report.sent == 0 and message.status is not MessageStatus.SENT
    assert "no SMS provider" in message.last_error
