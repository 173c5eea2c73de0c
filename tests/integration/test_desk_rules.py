"""Rules of the desk's work that a form or a button could get around: a reason that must
be said, a breach reason recorded once, an action offered only when it can succeed, an
"unreachable" patient who was not reached, invitations that cannot change whom an
account is for, and admin pages that show no patient's address."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape

from sqlalchemy import select

from portal.clock import frozen_at, utcnow
from portal.extensions import db
from portal.models import (
    AuditEntry,
    ContactMethod,
    MessageStatus,
    OutboxMessage,
    OutreachAttempt,
    OutreachResult,
    Role,
    SlaClock,
    Status,
)
from portal.sla.clocks import active_clock
from portal.sla.tasks import sweep
from tests.fixtures.desk import make_referral, user
from tests.integration.test_patient_links import DOB, send_link
from tests.integration.test_sla import at, referral_for
from tests.integration.test_workflow import act, load


def breached(app, desk) -> tuple[str, int]:
    """A referral whose first-touch clock was tagged breached; its clock's id."""
    with app.app_context():
        with frozen_at(at()):
            reference = make_referral(desk)
        with frozen_at(at(days=2)):
            sweep()
        return reference, active_clock(referral_for(reference)).id


def breach_url(reference: str, clock_id: int) -> str:
    return f"/referrals/{reference}/breaches/{clock_id}"


def stored_reason(app, clock_id: int) -> str | None:
    with app.app_context():
        return db.session.get(SlaClock, clock_id).breach_reason


# --- Reasons --------------------------------------------------------------------------


def test_declining_as_other_needs_the_other_reason(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.IN_REVIEW)
    clinical = client_for(desk.clinical)
    refused = act(clinical, app, reference, "decline", reason="other", other_reason="")
    assert refused.status_code == 422
    assert "Describe the other reason." in refused.get_data(as_text=True)
    assert load(app, reference).status is Status.IN_REVIEW
    done = act(clinical, app, reference, "decline", reason="other", other_reason="Out of area")
    assert done.status_code == 302
    assert load(app, reference).status is Status.DECLINED


def test_a_breach_reason_of_other_needs_its_words_and_keeps_what_was_typed(
    app, client_for, desk
):
    reference, clock_id = breached(app, desk)
    intake = client_for(desk.intake)
    alone = intake.post(breach_url(reference, clock_id), data={"reason": "other"})
    assert alone.status_code == 422
    assert "Describe the other reason." in alone.get_data(as_text=True)
    unchosen = intake.post(
        breach_url(reference, clock_id),
        data={"reason": "", "other_reason": "Fax line down all morning"},
    )
    assert unchosen.status_code == 422
    page = unescape(unchosen.get_data(as_text=True))
    assert "Choose a reason." in page
    assert 'value="Fax line down all morning"' in page
    assert stored_reason(app, clock_id) is None


def test_a_recorded_breach_reason_is_not_replaced_by_a_second_answer(app, client_for, desk):
    reference, clock_id = breached(app, desk)
    url = breach_url(reference, clock_id)
    first = client_for(desk.intake).post(url, data={"reason": "Volume or staffing"})
    assert first.status_code == 302
    second = client_for(desk.success).post(url, data={"reason": "System or technical problem"})
    assert second.status_code == 409
    assert "already recorded" in second.get_data(as_text=True)
    assert stored_reason(app, clock_id) == "Volume or staffing"


# --- Actions offered only when they can succeed ---------------------------------------


def test_first_touch_is_not_offered_again_from_needs_info(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.IN_REVIEW)
    intake = client_for(desk.intake)
    asked = act(intake, app, reference, "request_info", other_questions="Weight")
    assert asked.status_code == 302
    page = intake.get(f"/referrals/{reference}").get_data(as_text=True)
    assert "/actions/first_touch" not in page
    pressed = act(intake, app, reference, "first_touch")
    assert pressed.status_code == 409
    assert "already recorded" in pressed.get_data(as_text=True)


def test_a_first_touch_from_needs_info_is_still_offered_when_none_was_recorded(
    app, client_for, desk
):
    with app.app_context():
        reference = make_referral(desk, Status.NEEDS_INFO)  # arrived incomplete
    page = client_for(desk.intake).get(f"/referrals/{reference}").get_data(as_text=True)
    assert "/actions/first_touch" in page


def log_attempts(intake, app, reference, *results: str) -> None:
    for index, result in enumerate(results):
        response = act(
            intake, app, reference, "log_outreach", channel="phone", result=result, note=str(index)
        )
        assert response.status_code == 302


def test_unreachable_counts_only_the_attempts_that_did_not_reach_the_patient(
    app, client_for, desk
):
    with app.app_context():
        reference = make_referral(desk, Status.ACCEPTED)
    intake = client_for(desk.intake)
    log_attempts(intake, app, reference, "reached", "reached", "reached")
    refused = act(intake, app, reference, "mark_unreachable")
    assert refused.status_code == 409
    assert "(0 since they were last reached" in unescape(refused.get_data(as_text=True))
    # Two tries that failed before the patient was reached, two after: still not three.
    log_attempts(intake, app, reference, "no_answer", "left_message", "reached")
    log_attempts(intake, app, reference, "no_answer", "wrong_number")
    assert act(intake, app, reference, "mark_unreachable").status_code == 409
    log_attempts(intake, app, reference, "left_message")
    assert act(intake, app, reference, "mark_unreachable").status_code == 302
    assert load(app, reference).status is Status.UNREACHABLE


def add_unanswered_calls(referral, desk, *, hours_ago: tuple[int, ...]) -> None:
    """Calls intake made that hours ago, none of which reached the patient."""
    for hours in hours_ago:
        referral.outreach_attempts.append(
            OutreachAttempt(
                at=utcnow() - timedelta(hours=hours),
                actor_id=user(desk.intake).id,
                channel=ContactMethod.PHONE,
                result=OutreachResult.NO_ANSWER,
            )
        )


def test_after_a_no_show_only_the_tries_since_the_missed_visit_count(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.ACCEPTED)
        referral = referral_for(reference)
        # Three tries that failed before the booking, then a visit the patient missed.
        add_unanswered_calls(referral, desk, hours_ago=(50, 49, 48))
        referral.status = Status.NO_SHOW
        referral.appointment_at = utcnow() - timedelta(hours=2)
        db.session.commit()
    intake = client_for(desk.intake)
    assert act(intake, app, reference, "mark_unreachable").status_code == 409
    log_attempts(intake, app, reference, "no_answer", "no_answer", "no_answer")
    assert act(intake, app, reference, "mark_unreachable").status_code == 302


# --- Invitations ----------------------------------------------------------------------


def invitation_path(html: str) -> str:
    return re.search(r'https?://[^/"\s]+(/invitations/[^"\s<]+)', html).group(1)


def test_partner_success_cannot_turn_a_pending_admin_into_an_office_user(app, client_for, desk):
    admin = client_for(desk.admin)
    invited = admin.post(
        "/admin/users",
        data={"full_name": "Next Admin", "email": "next.admin@desk.example", "role": "admin"},
    )
    path = invitation_path(invited.get_data(as_text=True))
    refused = client_for(desk.success).post(
        f"/admin/partners/{desk.partner_b_id}",
        data={"full_name": "X", "email": "next.admin@desk.example"},
    )
    assert refused.status_code == 422
    assert "already waiting" in refused.get_data(as_text=True)
    with app.app_context():
        invitee = user("next.admin@desk.example")
        assert invitee.role is Role.ADMIN and invitee.partner_id is None
    assert app.test_client().get(path).status_code == 200  # the admin's link still works
    # Re-sending to the same office is fine, and an admin may change whom it is for.
    success = client_for(desk.success)
    office_invite = {"full_name": "Pat Office", "email": "pat@alpha.example"}
    for _send in range(2):
        resent = success.post(f"/admin/partners/{desk.partner_a_id}", data=office_invite)
        assert resent.status_code == 200
    assert admin.post(
        f"/admin/partners/{desk.partner_b_id}",
        data={"full_name": "X", "email": "next.admin@desk.example"},
    ).status_code == 200
    with app.app_context():
        assert user("next.admin@desk.example").partner_id == desk.partner_b_id


def test_disabling_an_invited_account_ends_its_invitation(app, client, client_for, desk):
    admin = client_for(desk.admin)
    invited = admin.post(
        "/admin/users",
        data={"full_name": "New Person", "email": "new@desk.example", "role": "intake"},
    )
    path = invitation_path(invited.get_data(as_text=True))
    with app.app_context():
        account = user("new@desk.example").id
    assert admin.post(f"/admin/users/{account}/disable").status_code == 302
    opened = client.get(path)
    assert opened.status_code == 410
    # Enabling it again does not bring the old link back: a new invitation is needed.
    assert admin.post(f"/admin/users/{account}/enable").status_code == 302
    assert client.get(path).status_code == 410


# --- Admin pages ----------------------------------------------------------------------


def test_the_undelivered_page_names_no_patients_address(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.ACCEPTED)
    day = (utcnow() + timedelta(days=3)).date().isoformat()
    sent = act(
        client_for(desk.intake),
        app,
        reference,
        "send_patient_link",
        via="email",
        mode="video",
        slot_1_date=day,
        slot_1_time="10:00",
    )
    assert sent.status_code == 302
    with app.app_context():
        email = referral_for(reference).patient_email
        messages = db.session.scalars(select(OutboxMessage).filter_by(recipient=email)).all()
        assert messages
        for message in messages:
            message.status = MessageStatus.DEAD
            message.last_error = f"550 5.1.1 <{email}>: Recipient address rejected"
        db.session.commit()
    page = client_for(desk.admin).get("/admin/outbox").get_data(as_text=True)
    assert email not in page
    assert f"the patient of {reference}" in page
    assert "Recipient address rejected" in page  # the server's answer, less the address


def test_an_accounts_audit_trail_shows_only_that_account(app, client_for, desk):
    with app.app_context():
        account = user(desk.intake).id
        db.session.add(
            AuditEntry(
                action="service_line.saved",
                target_type="service_line",
                target_id=str(account),
                detail={},
            )
        )
        db.session.commit()
    admin = client_for(desk.admin)
    admin.post(f"/admin/users/{account}/sessions/end-all")
    page = admin.get(f"/admin/audit?target={account}").get_data(as_text=True)
    assert "service_line.saved" not in page
    assert "session.ended_all" in page


def test_a_holiday_is_added_once_and_not_in_the_past(app, client_for, desk):
    admin = client_for(desk.admin)
    ahead = (utcnow().date() + timedelta(days=30)).isoformat()
    form = {"section": "holiday", "holiday-day": ahead, "holiday-name": "Founders day"}
    assert admin.post("/admin/sla", data=form).status_code == 302
    again = admin.post("/admin/sla", data={**form, "holiday-name": "Staff retreat"})
    assert again.status_code == 422
    assert "already a holiday: Founders day" in unescape(again.get_data(as_text=True))
    past = (utcnow().date() - timedelta(days=30)).isoformat()
    typo = admin.post("/admin/sla", data={**form, "holiday-day": past, "holiday-name": "Typo"})
    assert typo.status_code == 422
    assert "That day has passed." in typo.get_data(as_text=True)
    with app.app_context():
        added = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "settings.holiday_added")
        ).all()
        assert len(added) == 1


def test_tries_before_the_patient_asked_for_a_call_on_their_link_do_not_make_unreachable(
    app, client, client_for, desk
):
    """The patient asking for a call on their link is a reach (patient_reached_at is
    set, as for a decline): the unanswered tries before it say nothing about reaching
    them now."""

    with app.app_context():
        reference = make_referral(desk, Status.ACCEPTED)
        referral = referral_for(reference)
        add_unanswered_calls(referral, desk, hours_ago=(30, 29, 28))  # yesterday
        db.session.commit()
    intake = client_for(desk.intake)
    link_path = send_link(app, intake, reference)
    assert client.post(f"{link_path}/verify", data=DOB).status_code == 303
    client.post(f"{link_path}/answer", data={"choice": "call_me", "contact": "phone"})
    with app.app_context():
        assert referral_for(reference).patient_reached_at is not None
    # Minutes after the patient asked to be called, nobody has tried to call them.
    refused = act(intake, app, reference, "mark_unreachable")
    assert refused.status_code == 409, refused.status_code


