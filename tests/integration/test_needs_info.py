"""The needs-info round trip: intake asks, the referring office answers in place."""

from __future__ import annotations

import io
from html import unescape

from sqlalchemy import select

from portal.extensions import db
from portal.models import InfoRequest, OutboxMessage, Referral, ReferralEvent, Status
from portal.referrals.needs_info import open_items
from tests.fixtures.desk import PDF, make_referral


def version_of(app, reference) -> dict[str, int]:
    """The version field the partner's answer form carries (the referral as loaded)."""
    return {"version": load(app, reference).version}

def load(app, reference) -> Referral:
    with app.app_context():
        referral = db.session.scalar(select(Referral).filter_by(reference=reference))
        db.session.expunge(referral)
        return referral


def open_item_ids(app, reference) -> dict[str, int]:
    with app.app_context():
        referral = db.session.scalar(select(Referral).filter_by(reference=reference))
        return {item.label: item.id for item in open_items(referral)}


def timeline_kinds(app, reference) -> list[tuple[str, bool]]:
    with app.app_context():
        referral = db.session.scalar(select(Referral).filter_by(reference=reference))
        return [
            (e.kind, e.partner_visible)
            for e in db.session.scalars(
                select(ReferralEvent)
                .where(ReferralEvent.referral_id == referral.id)
                .order_by(ReferralEvent.id)
            )
        ]


def request_info(client, app, reference, **data):
    data.setdefault("version", load(app, reference).version)
    return client.post(f"/referrals/{reference}/actions/request_info", data=data)


def test_intake_asks_with_a_checklist_and_the_partner_answers_in_place(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.IN_REVIEW, service_line_id=desk.cardio_id)
    intake, partner = client_for(desk.intake), client_for(desk.partner_a)

    form = intake.get(f"/referrals/{reference}").get_data(as_text=True)
    assert "Echocardiogram report" in form and "Other questions" in form
    response = request_info(
        intake,
        app,
        reference,
        required_items=[str(desk.echo_item_id)],
        other_questions="Current blood pressure",
        message="The echo on file is from 2019; please send the newest.",
        note="Dr. K thinks the old echo is enough, asking anyway",
    )
    assert response.status_code == 302
    asked = load(app, reference)
    assert asked.status is Status.NEEDS_INFO
    assert asked.needs_info_at is not None  # counted as incomplete on the scorecard
    assert set(open_item_ids(app, reference)) == {"Echocardiogram report", "Current blood pressure"}

    page = unescape(partner.get(f"/referrals/{reference}").get_data(as_text=True))
    assert "Intake needs more information" in page
    assert "The echo on file is from 2019" in page
    assert "Dr. K thinks" not in page  # the staff note stays with staff
    assert "Action needed" in partner.get("/referrals/").get_data(as_text=True)

    ids = open_item_ids(app, reference)
    partial = partner.post(
        f"/referrals/{reference}/information",
        data={f"item_{ids['Current blood pressure']}": "128/82", **version_of(app, reference)},
        headers={"HX-Request": "true"},
    )
    html = unescape(partial.get_data(as_text=True))
    assert partial.status_code == 200 and "<html" not in html
    assert "Still missing: Echocardiogram report" in html
    assert load(app, reference).status is Status.NEEDS_INFO

    complete = partner.post(
        f"/referrals/{reference}/information",
        data={
            f"item_{ids['Echocardiogram report']}": (io.BytesIO(PDF), "echo-2026.pdf"),
            **version_of(app, reference),
        },
        headers={"HX-Request": "true"},
        content_type="multipart/form-data",
    )
    assert "Everything intake asked for has been sent" in complete.get_data(as_text=True)
    referral = load(app, reference)
    assert referral.status is Status.IN_REVIEW  # back in intake's queue
    assert referral.needs_info_at == asked.needs_info_at  # still counted once
    assert open_item_ids(app, reference) == {}

    staff_page = unescape(intake.get(f"/referrals/{reference}").get_data(as_text=True))
    assert "Partial answer received (1 of 2)" in staff_page
    assert "All requested information received" in staff_page
    assert "echo-2026.pdf" in staff_page
    kinds = [kind for kind, _visible in timeline_kinds(app, reference)]
    assert kinds[-3:] == ["request_info", "answer_info", "answer_info"]
    with app.app_context():
        to_intake = db.session.scalars(
            select(OutboxMessage.subject).where(
                OutboxMessage.recipient == app.config["INTAKE_TEAM_EMAIL"]
            )
        ).all()
    assert to_intake == [f"Referral {reference}: The referring office sent the missing information"]


def test_items_missing_at_submission_are_answered_the_same_way(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.NEEDS_INFO)
    ids = open_item_ids(app, reference)
    assert set(ids) == {"Echocardiogram report", "Medication list"}
    partner = client_for(desk.partner_a)
    response = partner.post(
        f"/referrals/{reference}/information",
        data={
            f"item_{ids['Medication list']}": "Aspirin",
            f"item_{ids['Echocardiogram report']}": (io.BytesIO(PDF), "echo.pdf"),
            "message": "Both attached",
            **version_of(app, reference),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 302  # without htmx: back to the page
    # Never touched by intake, so it waits for first touch again.
    assert load(app, reference).status is Status.SUBMITTED
    assert ("partner_message", True) in timeline_kinds(app, reference)


def test_a_wrong_document_is_refused_and_nothing_changes(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.NEEDS_INFO)
    ids = open_item_ids(app, reference)
    response = client_for(desk.partner_a).post(
        f"/referrals/{reference}/information",
        data={
            f"item_{ids['Echocardiogram report']}": (io.BytesIO(b"GIF89a"), "echo.gif"),
            **version_of(app, reference),
        },
        headers={"HX-Request": "true"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    assert "is not a PDF, PNG or JPEG file" in unescape(response.get_data(as_text=True))
    assert len(open_item_ids(app, reference)) == 2


def test_an_empty_answer_is_refused(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.NEEDS_INFO)
    response = client_for(desk.partner_a).post(
        f"/referrals/{reference}/information",
        data=version_of(app, reference),
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 422
    assert "Answer at least one item" in response.get_data(as_text=True)


def test_a_new_request_folds_in_what_is_still_missing(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.NEEDS_INFO)
    intake = client_for(desk.intake)
    assert request_info(intake, app, reference, other_documents="Insurance card").status_code == 302
    assert set(open_item_ids(app, reference)) == {
        "Echocardiogram report",
        "Medication list",
        "Insurance card",
    }
    with app.app_context():
        requests = db.session.scalars(select(InfoRequest).order_by(InfoRequest.id)).all()
        assert [r.closed_at is not None for r in requests] == [True, False]


def test_asking_for_nothing_is_refused(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.IN_REVIEW)
    response = request_info(client_for(desk.intake), app, reference, message="Hello?")
    assert response.status_code == 409
    assert "Choose at least one item" in response.get_data(as_text=True)


def test_only_intake_asks_and_only_the_partner_answers(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.NEEDS_INFO)
    response = request_info(client_for(desk.clinical), app, reference, other_questions="x")
    assert response.status_code == 403  # a role that may never ask
    staff_answer = client_for(desk.intake).post(f"/referrals/{reference}/information", data={})
    assert staff_answer.status_code == 403


def test_partners_get_an_unread_badge_until_they_open_the_referral(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.SUBMITTED)
    partner = client_for(desk.partner_a)
    assert 'id="unread-badge"' not in partner.get("/referrals/").get_data(as_text=True)
    request_info(client_for(desk.intake), app, reference, other_questions="Weight")
    listing = partner.get("/referrals/").get_data(as_text=True)
    assert 'id="unread-badge">1<' in listing and "New update" in listing
    partner.get(f"/referrals/{reference}")
    assert 'id="unread-badge"' not in partner.get("/referrals/").get_data(as_text=True)
    # A colleague at the same office still has the news waiting.
    colleague = client_for(desk.partner_a2)
    assert 'id="unread-badge">1<' in colleague.get("/referrals/").get_data(as_text=True)
    colleague.get(f"/referrals/{reference}")

    # The office's own answer is news to the colleague, not to the one who sent it.
    ids = open_item_ids(app, reference)
    partner.post(
        f"/referrals/{reference}/information",
        data={f"item_{ids['Weight']}": "81 kg", **version_of(app, reference)},
    )
    assert 'id="unread-badge"' not in partner.get("/referrals/").get_data(as_text=True)
    assert 'id="unread-badge">1<' in colleague.get("/referrals/").get_data(as_text=True)


def test_the_unread_badge_stops_counting_at_its_cap(app, client_for, desk, monkeypatch):
    monkeypatch.setattr("portal.referrals.routes.UNREAD_CAP", 3)
    monkeypatch.setattr("portal.referrals.unread.UNREAD_CAP", 3)
    intake = client_for(desk.intake)
    partner = client_for(desk.partner_a)
    for count in (1, 2, 3, 4):
        with app.app_context():
            reference = make_referral(desk, Status.SUBMITTED)
        request_info(intake, app, reference, other_questions="Weight")
        badge = "2+" if count >= 3 else str(count)
        assert f'id="unread-badge">{badge}<' in partner.get("/referrals/").get_data(as_text=True)


def test_follow_up_notes_reach_the_partner_only_with_outcome_sharing_consent(app, client_for, desk):
    with app.app_context():
        shared = make_referral(desk, Status.COMPLETED)
        private = make_referral(desk, Status.COMPLETED, consent_to_outcome_sharing=False)
    clinical = client_for(desk.clinical)
    for reference in (shared, private):
        response = clinical.post(
            f"/referrals/{reference}/actions/share_follow_up",
            data={"version": load(app, reference).version, "message": "Started CPAP; doing well"},
        )
        if reference == shared:
            assert response.status_code == 302
        else:
            assert response.status_code == 409
            assert "did not consent to outcome sharing" in response.get_data(as_text=True)
    partner = client_for(desk.partner_a)
    assert "Started CPAP" in partner.get(f"/referrals/{shared}").get_data(as_text=True)
    assert "Started CPAP" not in partner.get(f"/referrals/{private}").get_data(as_text=True)
    with app.app_context():
        subjects = db.session.scalars(select(OutboxMessage.subject)).all()
    assert f"Referral {shared}: Follow-up note from the care team" in subjects
    assert not any("CPAP" in subject for subject in subjects)
