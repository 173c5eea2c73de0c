"""Patients confirm a next step through a signed link, with no account."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

import pytest
from sqlalchemy import select

from portal.clock import frozen_at, utcnow
from portal.extensions import db
from portal.localtime import to_local
from portal.models import (
    OutboxMessage,
    PatientLink,
    Referral,
    ReferralEvent,
    SlotOffer,
    Status,
)
from portal.patients.links import LinkProblem, LinkRefused, resolve, serializer
from portal.scorecard import metrics
from portal.scorecard.periods import today, week_of
from tests.fixtures.desk import make_referral

DOB = {"day": "14", "month": "3", "year": "1961"}
WRONG_DOB = {"day": "15", "month": "3", "year": "1961"}


def load(app, reference) -> Referral:
    with app.app_context():
        referral = db.session.scalar(select(Referral).filter_by(reference=reference))
        db.session.expunge(referral)
        return referral


def send_link(app, client, reference, via="email", slots=2) -> str:
    """Send the patient's link as intake would; return the link's path from the message."""
    with app.app_context():
        start = to_local(utcnow() + timedelta(days=2))
    data = {"version": load(app, reference).version, "via": via, "mode": "video"}
    for index in range(1, slots + 1):
        data[f"slot_{index}_date"] = (start + timedelta(days=index)).date().isoformat()
        data[f"slot_{index}_time"] = "10:30"
    response = client.post(f"/referrals/{reference}/actions/send_patient_link", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    with app.app_context():
        message = db.session.scalars(
            select(OutboxMessage).order_by(OutboxMessage.id.desc())
        ).first()
    url = re.search(r"(http://\S+/p/\S+)", message.body).group(1)
    return url.split(":8000", 1)[1]


@pytest.fixture
def accepted(app, desk):
    with app.app_context():
        return make_referral(desk, Status.ACCEPTED)


@pytest.fixture
def link_path(app, client_for, desk, accepted):
    return send_link(app, client_for(desk.intake), accepted)


def link_row(app) -> PatientLink:
    with app.app_context():
        row = db.session.scalars(select(PatientLink).order_by(PatientLink.id.desc())).first()
        db.session.expunge(row)
        return row


def test_the_message_reaches_the_patient_with_a_link_and_no_details(app, link_path, accepted):
    with app.app_context():
        message = db.session.scalars(
            select(OutboxMessage).order_by(OutboxMessage.id.desc())
        ).first()
    assert message.recipient == "zephyrine.q@example.com"
    assert link_path in message.body and accepted not in message.body


def test_text_message_links_work_too(app, client_for, desk, accepted):
    path = send_link(app, client_for(desk.intake), accepted, via="sms", slots=0)
    with app.app_context():
        message = db.session.scalars(
            select(OutboxMessage).order_by(OutboxMessage.id.desc())
        ).first()
    assert message.channel.value == "sms" and message.recipient == "+12025550143"
    assert path in message.body


def test_opening_the_link_changes_nothing_and_shows_nothing(app, client, link_path, accepted):
    before = link_row(app)
    version = load(app, accepted).version
    page = client.get(link_path)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Confirm it is you" in html
    for secret in ("Zephyrine", "Quillfeather", accepted, "Snoring", "Dr. Park"):
        assert secret not in html
    assert page.headers["Referrer-Policy"] == "no-referrer"
    assert page.headers["Cache-Control"] == "no-store"
    after = link_row(app)
    assert (after.used_at, after.failed_attempts) == (before.used_at, before.failed_attempts)
    assert load(app, accepted).version == version


def test_patient_verifies_and_books_an_offered_time(
    app, client, client_for, desk, link_path, accepted
):
    verify = client.post(f"{link_path}/verify", data=DOB)
    assert verify.status_code == 303
    choices = client.get(link_path).get_data(as_text=True)
    assert "Choose your next step" in choices
    slot_value = re.search(r'value="(slot-\d+)"', choices).group(1)
    answer = client.post(f"{link_path}/answer", data={"choice": slot_value, "contact": "sms"})
    assert answer.status_code == 303
    done = client.get(link_path).get_data(as_text=True)
    assert "You are booked" in done and "Before your visit" in done and "15 minutes" in done

    referral = load(app, accepted)
    assert referral.status is Status.SCHEDULED and referral.appointment_at is not None
    partner_page = unescape(
        client_for(desk.partner_a).get(f"/referrals/{accepted}").get_data(as_text=True)
    )
    assert "Patient confirmed next step" in partner_page
    assert "prefers text messages" in partner_page
    with app.app_context():
        subjects = db.session.scalars(select(OutboxMessage.subject)).all()
    assert f"Referral {accepted}: The patient booked a visit" in subjects
    assert f"Referral {accepted}: First visit scheduled" in subjects
    # The link is used up: another browser cannot use it again.
    other = app.test_client()
    reused = other.get(link_path)
    assert reused.status_code == 410 and "has been used" in reused.get_data(as_text=True)


def test_patient_asks_for_a_call(app, client, client_for, desk, link_path, accepted):
    client.post(f"{link_path}/verify", data=DOB)
    client.post(f"{link_path}/answer", data={"choice": "call_me", "contact": "phone"})
    assert "We will call you" in client.get(link_path).get_data(as_text=True)
    assert load(app, accepted).status is Status.ACCEPTED
    html = client_for(desk.partner_a).get(f"/referrals/{accepted}").get_data(as_text=True)
    assert "Patient confirmed next step: asked for a call" in html


def test_patient_declines_and_the_reason_stays_with_staff(
    app, client, client_for, desk, link_path, accepted
):
    client.post(f"{link_path}/verify", data=DOB)
    client.post(
        f"{link_path}/answer",
        data={"choice": "decline", "contact": "email", "reason": "Found a clinic nearer home"},
    )
    assert load(app, accepted).status is Status.WITHDRAWN
    partner_html = client_for(desk.partner_a).get(f"/referrals/{accepted}").get_data(as_text=True)
    assert "Patient declined the next step" in partner_html
    assert "clinic nearer home" not in partner_html
    staff_html = client_for(desk.intake).get(f"/referrals/{accepted}").get_data(as_text=True)
    assert "clinic nearer home" in staff_html


@pytest.mark.parametrize("choice", ["call_me", "decline"])
def test_a_patient_who_answers_on_their_link_was_reached(app, client, link_path, accepted, choice):
    """Proving the date of birth and answering is reaching the patient, whatever the
    answer: the scorecard's funnel counts them as staff reaching them by phone."""
    client.post(f"{link_path}/verify", data=DOB)
    client.post(f"{link_path}/answer", data={"choice": choice, "contact": "email"})
    assert load(app, accepted).patient_reached_at is not None
    with app.app_context():
        funnel = dict(metrics.funnel(week_of(today()).scope()))
    assert funnel["Patient reached"] == 1


def test_choices_need_a_verified_date_of_birth(app, client, link_path, accepted):
    response = client.post(f"{link_path}/answer", data={"choice": "call_me", "contact": "sms"})
    assert response.status_code == 303
    assert link_row(app).used_at is None


def test_verification_expires(app, client, link_path):
    client.post(f"{link_path}/verify", data=DOB)
    with frozen_at(utcnow() + timedelta(minutes=31)):
        assert "Confirm it is you" in client.get(link_path).get_data(as_text=True)


def test_five_wrong_dates_of_birth_lock_the_link_until_staff_reissue_it(
    app, client, client_for, desk, link_path, accepted
):
    for tries_left in (4, 3, 2, 1):
        response = client.post(f"{link_path}/verify", data=WRONG_DOB)
        assert response.status_code == 422
        text = response.get_data(as_text=True)
        assert f"You have {tries_left} {'try' if tries_left == 1 else 'tries'} left" in text
    locked = client.post(f"{link_path}/verify", data=WRONG_DOB)
    assert locked.status_code == 410 and "This link is locked" in locked.get_data(as_text=True)
    # Even the right date no longer opens it.
    assert "This link is locked" in client.post(f"{link_path}/verify", data=DOB).get_data(
        as_text=True
    )
    assert "This link is locked" in client.get(link_path).get_data(as_text=True)
    staff_page = client_for(desk.intake).get(f"/referrals/{accepted}").get_data(as_text=True)
    assert "Locked" in staff_page

    new_path = send_link(app, client_for(desk.intake), accepted)
    assert client.post(f"{new_path}/verify", data=DOB).status_code == 303
    assert "revoked" not in new_path


def test_sending_a_new_link_revokes_the_old_one(app, client, client_for, desk, link_path, accepted):
    send_link(app, client_for(desk.intake), accepted)
    page = client.get(link_path)
    assert page.status_code == 410 and "We sent you a newer link" in page.get_data(
        as_text=True
    )


def test_an_old_link_does_not_send_the_patient_to_a_newer_link_that_no_longer_works(
    app, client, client_for, desk, link_path, accepted
):
    intake = client_for(desk.intake)
    newest = send_link(app, intake, accepted)
    with app.app_context():
        when = to_local(utcnow() + timedelta(days=3))
    booked = intake.post(  # booked by phone: the newest link is revoked too
        f"/referrals/{accepted}/actions/schedule",
        data={
            "version": load(app, accepted).version,
            "appointment_date": when.date().isoformat(),
            "appointment_time": "11:00",
            "mode": "phone",
        },
    )
    assert booked.status_code == 302
    assert client.get(newest).status_code == 409
    oldest = client.get(link_path)
    assert oldest.status_code == 409
    page = unescape(oldest.get_data(as_text=True))
    assert "We sent you a newer link" not in page
    assert "Something changed since we sent this link" in page


def test_an_old_link_does_not_send_the_patient_to_a_newer_link_that_expired(
    app, client, client_for, desk, link_path, accepted
):
    send_link(app, client_for(desk.intake), accepted)
    with frozen_at(utcnow() + app.config["PATIENT_LINK_MAX_AGE"] + timedelta(minutes=1)):
        page = unescape(client.get(link_path).get_data(as_text=True))
    assert "We sent you a newer link" not in page


def test_an_expired_link_says_so(app, client, link_path):
    with frozen_at(utcnow() + app.config["PATIENT_LINK_MAX_AGE"] + timedelta(minutes=1)):
        page = client.get(link_path)
    assert page.status_code == 410 and "This link has expired" in page.get_data(as_text=True)


def test_a_tampered_link_does_not_work(client, link_path):
    tampered = link_path[:-4] + ("AAAA" if not link_path.endswith("AAAA") else "BBBB")
    page = client.get(tampered)
    assert page.status_code == 404 and "This link does not work" in page.get_data(as_text=True)


def test_tokens_for_another_purpose_are_refused(app, link_path):
    with app.app_context():
        row = link_row(app)
        invitation_like = serializer("invitation").dumps(row.public_id)
        with pytest.raises(LinkRefused) as refused:
            resolve(invitation_like)
        assert refused.value.problem is LinkProblem.INVALID
        # And a patient token is not accepted where invitations are checked.
        from portal.accounts.services import InvitationInvalid, load_invitation

        with pytest.raises(InvitationInvalid):
            load_invitation(link_path.rsplit("/", 1)[1])


def test_links_signed_with_the_old_key_keep_working_during_a_rotation(app, client, link_path):
    old_key = app.config["SECRET_KEY"]
    app.config.update(SECRET_KEY="a-brand-new-key", SECRET_KEY_FALLBACKS=[old_key])
    assert "Confirm it is you" in app.test_client().get(link_path).get_data(as_text=True)
    app.config["SECRET_KEY_FALLBACKS"] = []
    assert app.test_client().get(link_path).status_code == 404


def test_a_time_that_has_passed_cannot_be_booked(app, client, link_path, accepted):
    client.post(f"{link_path}/verify", data=DOB)
    slot_value = re.search(
        r'value="(slot-\d+)"', client.get(link_path).get_data(as_text=True)
    ).group(1)
    with frozen_at(utcnow() + timedelta(days=6)):
        client.post(f"{link_path}/verify", data=DOB)
        response = client.post(f"{link_path}/answer", data={"choice": slot_value, "contact": "sms"})
    assert response.status_code == 422 and "That time has passed" in response.get_data(as_text=True)


def offered_times(app) -> list[SlotOffer]:
    with app.app_context():
        slots = db.session.scalars(select(SlotOffer).order_by(SlotOffer.starts_at)).all()
        db.session.expunge_all()
        return slots


def test_a_time_that_has_passed_is_no_longer_offered(app, client, link_path):
    first, second = offered_times(app)  # three and four days ahead
    with frozen_at(first.starts_at + timedelta(hours=1)):
        assert client.post(f"{link_path}/verify", data=DOB).status_code == 303
        choices = client.get(link_path).get_data(as_text=True)
    assert re.findall(r'value="(slot-\d+)"', choices) == [f"slot-{second.id}"]
    assert "None of these times work. Please call me." in choices


def test_when_every_offered_time_has_passed_the_patient_can_ask_for_a_call_or_say_no(
    app, client, link_path, accepted
):
    last = offered_times(app)[-1].starts_at
    with frozen_at(last + timedelta(minutes=1)):
        assert client.post(f"{link_path}/verify", data=DOB).status_code == 303
        choices = unescape(client.get(link_path).get_data(as_text=True))
        assert not re.findall(r'value="(slot-\d+)"', choices)
        assert "The times we offered you have passed." in choices
        assert "Please call me to find a time." in choices
        assert 'value="decline"' in choices
        answered = client.post(f"{link_path}/answer", data={"choice": "call_me", "contact": "sms"})
    assert answered.status_code == 303
    assert link_row(app).answer.value == "call_me"


def test_the_answer_is_refused_if_the_referral_moved_on_meanwhile(
    app, client, client_for, desk, link_path, accepted
):
    client.post(f"{link_path}/verify", data=DOB)
    client_for(desk.partner_a).post(
        f"/referrals/{accepted}/actions/withdraw", data={"version": load(app, accepted).version}
    )
    response = client.post(f"{link_path}/answer", data={"choice": "call_me", "contact": "sms"})
    assert response.status_code == 409
    assert "We could not save your answer" in response.get_data(as_text=True)
    assert link_row(app).used_at is None


def test_links_go_only_by_email_or_text_to_a_known_address(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.ACCEPTED, patient_email=None)
    response = client_for(desk.intake).post(
        f"/referrals/{reference}/actions/send_patient_link",
        data={"version": load(app, reference).version, "via": "email", "mode": "video"},
    )
    assert response.status_code == 409
    assert "There is no patient email" in response.get_data(as_text=True)


def test_the_patient_answer_lands_on_the_timeline_as_the_system(app, client, link_path, accepted):
    client.post(f"{link_path}/verify", data=DOB)
    client.post(f"{link_path}/answer", data={"choice": "call_me", "contact": "sms"})
    with app.app_context():
        event = db.session.scalars(select(ReferralEvent).order_by(ReferralEvent.id.desc())).first()
        assert event.kind == "patient_answered" and event.actor_id is None and event.partner_visible


def test_date_of_birth_checks_are_audited(app, client, link_path, accepted):
    from portal.models import AuditEntry

    client.post(f"{link_path}/verify", data=WRONG_DOB)
    client.post(f"{link_path}/verify", data=DOB)
    with app.app_context():
        actions = db.session.scalars(
            select(AuditEntry.action).where(AuditEntry.target_id == accepted)
        ).all()
    assert actions[-2:] == ["patient_link.verify_failed", "patient_link.verified"]
