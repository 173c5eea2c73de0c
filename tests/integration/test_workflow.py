"""Staff and partner actions over HTTP: each allowed only to its role and status."""

from __future__ import annotations

from datetime import timedelta
from html import unescape

import pytest
from sqlalchemy import select

from portal.clock import utcnow
from portal.extensions import db
from portal.localtime import to_local
from portal.models import (
    AuditEntry,
    OutboxMessage,
    OutreachAttempt,
    Referral,
    ReferralEvent,
    Status,
)
from tests.fixtures.desk import make_referral


def load(app, reference) -> Referral:
    with app.app_context():
        referral = db.session.scalar(select(Referral).where(Referral.reference == reference))
        db.session.expunge(referral)
        return referral


def act(client, app, reference, action, **data):
    data.setdefault("version", load(app, reference).version)
    return client.post(f"/referrals/{reference}/actions/{action}", data=data)


def events(app, reference) -> list[ReferralEvent]:
    with app.app_context():
        referral = db.session.scalar(select(Referral).where(Referral.reference == reference))
        rows = list(
            db.session.scalars(
                select(ReferralEvent)
                .where(ReferralEvent.referral_id == referral.id)
                .order_by(ReferralEvent.id)
            )
        )
        db.session.expunge_all()
        return rows


def test_the_whole_loop_from_submission_to_started_care(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk)
    intake, clinical = client_for(desk.intake), client_for(desk.clinical)

    assert act(intake, app, reference, "first_touch", note="Called the office").status_code == 302
    assert load(app, reference).status is Status.IN_REVIEW
    assert load(app, reference).first_touch_at is not None

    assert act(clinical, app, reference, "accept", provider="Dr. Helen Park").status_code == 302
    referral = load(app, reference)
    assert referral.status is Status.ACCEPTED and referral.assigned_provider == "Dr. Helen Park"

    response = act(intake, app, reference, "log_outreach", channel="phone", result="reached")
    assert response.status_code == 302
    assert load(app, reference).patient_reached_at is not None

    tomorrow = (utcnow() + timedelta(days=1)).date().isoformat()
    response = act(
        intake,
        app,
        reference,
        "schedule",
        appointment_date=tomorrow,
        appointment_time="15:30",
        mode="video",
    )
    assert response.status_code == 302
    referral = load(app, reference)
    assert referral.status is Status.SCHEDULED
    with app.app_context():
        local = to_local(referral.appointment_at)
    assert (local.hour, local.minute) == (15, 30)  # entered in the practice's time zone

    with app.app_context():
        r = db.session.scalar(select(Referral).where(Referral.reference == reference))
        r.appointment_at = utcnow() - timedelta(hours=2)
        db.session.commit()
    assert act(intake, app, reference, "record_completed").status_code == 302
    referral = load(app, reference)
    assert referral.status is Status.COMPLETED and referral.outcome_at is not None
    assert referral.outcome_class.label == "Started care"

    kinds = [e.kind for e in events(app, reference)]
    assert kinds == [
        "submitted",
        "first_touch",
        "accept",
        "log_outreach",
        "schedule",
        "record_completed",
    ]
    with app.app_context():
        actions = set(db.session.scalars(select(AuditEntry.action)))
        assert {"referral.first_touch", "referral.accept", "referral.record_completed"} <= actions
        headlines = [m.subject for m in db.session.scalars(select(OutboxMessage))]
    # The partner hears about receipt, acceptance, reaching the patient, scheduling and
    # the outcome.
    assert [h.split(": ", 1)[1] for h in headlines] == [
        "Referral received",
        "Accepted",
        "Patient reached",
        "First visit scheduled",
        "First visit completed: the patient has started care",
    ]


@pytest.mark.parametrize(
    ("email_attr", "action", "status", "data", "message"),
    [
        (
            "clinical",
            "first_touch",
            Status.SUBMITTED,
            {},
            "Only intake staff can record first touch",
        ),
        (
            "intake",
            "accept",
            Status.IN_REVIEW,
            {"provider": "Dr. X"},
            "Only clinical staff can accept",
        ),
        (
            "success",
            "decline",
            Status.IN_REVIEW,
            {"reason": "other", "other_reason": "x"},
            "Only clinical staff",
        ),
        ("admin", "first_touch", Status.SUBMITTED, {}, "Only intake staff"),
        ("intake", "withdraw", Status.SUBMITTED, {}, "Only the referring office can withdraw"),
        (
            "clinical",
            "accept",
            Status.SUBMITTED,
            {"provider": "Dr. X"},
            "This referral is submitted",
        ),
        (
            "intake",
            "schedule",
            Status.IN_REVIEW,
            {"appointment_date": "2099-01-01", "appointment_time": "10:00", "mode": "video"},
            "is not possible from there",
        ),
        ("intake", "record_completed", Status.ACCEPTED, {}, "is not possible from there"),
        ("partner_a", "withdraw", Status.COMPLETED, {}, "This referral is completed"),
    ],
)
def test_refused_transitions_say_why_and_change_nothing(
    app, client_for, desk, email_attr, action, status, data, message
):
    with app.app_context():
        reference = make_referral(desk, status)
    before = load(app, reference)
    response = act(client_for(getattr(desk, email_attr)), app, reference, action, **data)
    # A role that may never take the action is forbidden; a status that does not allow
    # it now is a conflict with the referral's state.
    assert response.status_code == (403 if message.startswith("Only") else 409)
    assert message in unescape(response.get_data(as_text=True))
    after = load(app, reference)
    assert (after.status, after.version) == (before.status, before.version)


def test_a_stale_form_gets_a_conflict_and_keeps_what_was_typed(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.IN_REVIEW)
    stale_version = load(app, reference).version
    first, second = client_for(desk.clinical), client_for(desk.clinical)
    # A change the partner sees moves the version on (a staff-only note does not: it
    # cannot overwrite anything).
    assert (
        act(first, app, reference, "share_follow_up", message="Imaging reviewed").status_code == 302
    )

    response = act(
        second,
        app,
        reference,
        "accept",
        version=stale_version,
        provider="Dr. Rosa Martinez",
        note="Fits criteria",
    )
    html = unescape(response.get_data(as_text=True))
    assert response.status_code == 409
    assert "Someone else changed this referral" in html
    assert 'value="Dr. Rosa Martinez"' in html and "Fits criteria" in html
    assert load(app, reference).status is Status.IN_REVIEW
    # Resubmitting the kept entries against the fresh version works.
    assert act(second, app, reference, "accept", provider="Dr. Rosa Martinez").status_code == 302


def test_decline_and_redirect_record_their_reason(app, client_for, desk):
    with app.app_context():
        declined = make_referral(desk, Status.IN_REVIEW)
        redirected = make_referral(desk, Status.IN_REVIEW)
    clinical = client_for(desk.clinical)
    missing = act(clinical, app, declined, "decline", reason="")
    assert missing.status_code == 422
    assert "Choose why the referral is declined" in missing.get_data(as_text=True)
    assert (
        act(clinical, app, declined, "decline", reason="other", other_reason="Under 18").status_code
        == 302
    )
    assert load(app, declined).decline_reason == "Under 18"
    assert load(app, declined).outcome_class.label == "Not eligible"

    assert act(clinical, app, redirected, "redirect", destination="Pulmonology").status_code == 302
    referral = load(app, redirected)
    assert referral.status is Status.REDIRECTED and referral.redirect_destination == "Pulmonology"


def test_unreachable_needs_the_outreach_attempts_first(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.ACCEPTED)
    intake = client_for(desk.intake)
    refused = act(intake, app, reference, "mark_unreachable")
    assert refused.status_code == 409
    assert "Log at least 3 contact attempts" in refused.get_data(as_text=True)
    for _ in range(3):
        assert (
            act(
                intake, app, reference, "log_outreach", channel="phone", result="no_answer"
            ).status_code
            == 302
        )
    assert act(intake, app, reference, "mark_unreachable").status_code == 302
    assert load(app, reference).status is Status.UNREACHABLE
    with app.app_context():
        assert db.session.query(OutreachAttempt).count() == 3
    # Failed attempts are staff-only on the timeline.
    attempts = [e for e in events(app, reference) if e.kind == "log_outreach"]
    assert attempts and not any(e.partner_visible for e in attempts)


def test_no_show_then_rebooking(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.NO_SHOW)
    later = (utcnow() + timedelta(days=5)).date().isoformat()
    response = act(
        client_for(desk.intake),
        app,
        reference,
        "schedule",
        appointment_date=later,
        appointment_time="09:00",
        mode="phone",
    )
    assert response.status_code == 302
    assert load(app, reference).status is Status.SCHEDULED


def test_visits_cannot_be_scheduled_in_the_past_or_completed_early(app, client_for, desk):
    with app.app_context():
        accepted = make_referral(desk, Status.ACCEPTED)
        scheduled = make_referral(desk, Status.SCHEDULED)
    intake = client_for(desk.intake)
    past = act(
        intake,
        app,
        accepted,
        "schedule",
        appointment_date="2020-01-01",
        appointment_time="09:00",
        mode="video",
    )
    assert past.status_code == 409 and "must be in the future" in past.get_data(as_text=True)
    early = act(intake, app, scheduled, "record_completed")
    assert early.status_code == 409 and "still in the future" in early.get_data(as_text=True)


def test_partner_withdraws_its_own_referral(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.ACCEPTED)
    response = act(client_for(desk.partner_a2), app, reference, "withdraw", reason="Moved away")
    assert response.status_code == 302
    referral = load(app, reference)
    assert referral.status is Status.WITHDRAWN
    assert events(app, reference)[-1].summary == "Withdrawn by the referring office: Moved away"


def test_needs_info_referral_gets_first_touch_then_returns_to_review(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.NEEDS_INFO)
    intake = client_for(desk.intake)
    assert act(intake, app, reference, "first_touch").status_code == 302
    referral = load(app, reference)
    assert referral.status is Status.NEEDS_INFO and referral.first_touch_at is not None
    assert act(intake, app, reference, "resume_review").status_code == 302
    assert load(app, reference).status is Status.IN_REVIEW
    second = act(intake, app, reference, "first_touch")
    assert second.status_code == 409


def test_staff_page_offers_only_the_actions_of_the_role_and_status(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.IN_REVIEW)
    clinical_page = client_for(desk.clinical).get(f"/referrals/{reference}").get_data(as_text=True)
    intake_page = client_for(desk.intake).get(f"/referrals/{reference}").get_data(as_text=True)
    for action in ("accept", "decline", "redirect"):
        assert f"/actions/{action}" in clinical_page
        assert f"/actions/{action}" not in intake_page
    assert "/actions/first_touch" not in intake_page  # already done


def test_an_unknown_action_is_not_found(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk)
    response = client_for(desk.intake).post(
        f"/referrals/{reference}/actions/teleport", data={"version": 1}
    )
    assert response.status_code == 404


def test_every_change_is_audited_with_who_did_it(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk)
    act(client_for(desk.intake), app, reference, "first_touch")
    with app.app_context():
        entry = db.session.scalar(
            select(AuditEntry).where(AuditEntry.action == "referral.first_touch")
        )
        assert entry.target_id == reference
        assert entry.detail == {"from_status": "submitted", "to_status": "in_review"}
        assert entry.actor_id is not None and entry.address == "127.0.0.1"
