"""The action registry: conflicts that help, requests that close, and the page it draws."""

from __future__ import annotations

import re
from collections import Counter
from datetime import timedelta
from html import unescape

from sqlalchemy import select, update

from portal.clock import utcnow
from portal.extensions import db
from portal.localtime import to_local
from portal.models import CloseReason, InfoRequest, Referral, Status
from portal.patients.tasks import remind_appointments
from portal.referrals.actions import ACTIONS, form_actions
from tests.fixtures.desk import make_referral
from tests.integration.test_workflow import act, events, load


def hidden(html: str, action: str, name: str) -> str:
    """A hidden field's value inside one action's form on the page."""
    form = re.search(rf'action="[^"]*/actions/{action}"(.*?)</form>', html, re.S).group(1)
    return re.search(rf'name="{name}"[^>]*value="([^"]*)"', form).group(1)


def test_a_conflict_lists_what_changed_and_the_kept_form_then_works(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.IN_REVIEW)
    first, second = client_for(desk.intake), client_for(desk.intake)
    page = second.get(f"/referrals/{reference}").get_data(as_text=True)
    loaded = {name: hidden(page, "add_note", name) for name in ("version", "seen_event")}

    # Meanwhile a colleague acts.
    assert (
        act(first, app, reference, "request_info", other_questions="Current weight").status_code
        == 302
    )

    stale = second.post(
        f"/referrals/{reference}/actions/add_note", data={**loaded, "note": "Called the GP"}
    )
    html = unescape(stale.get_data(as_text=True))
    assert stale.status_code == 409
    assert "Your change was not saved" in html and "Since you opened this page" in html
    since = html.split("Since you opened this page", 1)[1].split("</ul>", 1)[0]
    assert "More information needed" in since and "(Intake)" in since
    assert "Called the GP" in html  # what they typed is kept
    fresh_version = hidden(html, "add_note", "version")
    assert int(fresh_version) == load(app, reference).version

    # Pressing the button again acts on the referral as it is now.
    again = second.post(
        f"/referrals/{reference}/actions/add_note",
        data={
            "version": fresh_version,
            "seen_event": hidden(html, "add_note", "seen_event"),
            "note": "Called the GP",
        },
    )
    assert again.status_code == 302
    kinds = [e.kind for e in events(app, reference)]
    assert kinds[-2:] == ["request_info", "add_note"]  # one consistent history


def test_a_contact_attempt_sent_twice_is_logged_once_and_the_second_says_why(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.ACCEPTED)
    intake = client_for(desk.intake)
    page = intake.get(f"/referrals/{reference}").get_data(as_text=True)
    form = {name: hidden(page, "log_outreach", name) for name in ("version", "seen_event")}
    form |= {"channel": "phone", "result": "no_answer", "note": "Rang twice"}
    assert intake.post(f"/referrals/{reference}/actions/log_outreach", data=form).status_code == 302
    # The same form again: a double click, or Back and submit.
    again = intake.post(f"/referrals/{reference}/actions/log_outreach", data=form)
    html = unescape(again.get_data(as_text=True))
    assert again.status_code == 409
    assert "You did this already: “Log a contact attempt” was saved" in html
    assert "Rang twice" in html  # kept
    assert [e.kind for e in events(app, reference)].count("log_outreach") == 1
    # Submitting the kept form once more logs a second attempt, on purpose.
    on_purpose = {
        **form,
        "version": hidden(html, "log_outreach", "version"),
        "seen_event": hidden(html, "log_outreach", "seen_event"),
    }
    assert (
        intake.post(f"/referrals/{reference}/actions/log_outreach", data=on_purpose).status_code
        == 302
    )
    assert [e.kind for e in events(app, reference)].count("log_outreach") == 2


def test_the_practices_bookkeeping_is_no_conflict_for_the_office(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.SCHEDULED)
        db.session.execute(
            update(Referral)
            .where(Referral.reference == reference)
            .values(appointment_at=utcnow() + timedelta(hours=5))
        )
        db.session.commit()
    office = client_for(desk.partner_a)
    page = office.get(f"/referrals/{reference}").get_data(as_text=True)
    form = {name: hidden(page, "withdraw", name) for name in ("version", "seen_event")}
    with app.app_context():
        assert remind_appointments() == 1  # a staff-only event: the version moves on
        db.session.commit()
    assert load(app, reference).version != int(form["version"])
    withdrawn = office.post(
        f"/referrals/{reference}/actions/withdraw", data={**form, "reason": "Patient moved"}
    )
    assert withdrawn.status_code == 302, withdrawn.status_code
    assert load(app, reference).status is Status.WITHDRAWN


def test_after_a_conflict_an_action_no_longer_possible_says_why(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.IN_REVIEW)
    clinical = client_for(desk.clinical)
    version = load(app, reference).version
    assert (
        act(client_for(desk.clinical), app, reference, "accept", provider="Dr. Park").status_code
        == 302
    )
    response = clinical.post(
        f"/referrals/{reference}/actions/decline",
        data={"version": version, "reason": "Outside our service area"},
    )
    html = unescape(response.get_data(as_text=True))
    assert response.status_code == 409
    assert "it is now accepted, so “Decline as not eligible” is no longer possible" in html
    assert load(app, reference).status is Status.ACCEPTED


def test_the_partners_answer_checks_the_version_too(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.NEEDS_INFO)
        items = db.session.scalars(
            select(InfoRequest).join(Referral).where(Referral.reference == reference)
        ).all()
        assert len(items) == 1
    stale_version = load(app, reference).version
    assert act(client_for(desk.intake), app, reference, "add_note", note="x").status_code == 302
    assert act(client_for(desk.intake), app, reference, "first_touch").status_code == 302
    partner = client_for(desk.partner_a)
    response = partner.post(
        f"/referrals/{reference}/information",
        data={"version": stale_version, "message": "Here you are"},
        headers={"HX-Request": "true"},
    )
    assert response.status_code == 409
    assert "The referral changed while you were answering" in response.get_data(as_text=True)


def test_leaving_needs_info_closes_the_request_and_says_so(app, client_for, desk):
    with app.app_context():
        resumed = make_referral(desk, Status.NEEDS_INFO)
        withdrawn = make_referral(desk, Status.NEEDS_INFO)
    intake, partner = client_for(desk.intake), client_for(desk.partner_a)
    assert act(intake, app, resumed, "first_touch").status_code == 302
    assert act(intake, app, resumed, "resume_review").status_code == 302
    assert act(partner, app, withdrawn, "withdraw").status_code == 302
    with app.app_context():
        reasons = {
            ref: db.session.scalar(
                select(InfoRequest.close_reason).join(Referral).where(Referral.reference == ref)
            )
            for ref in (resumed, withdrawn)
        }
    assert reasons == {resumed: CloseReason.RESUMED, withdrawn: CloseReason.LEFT}
    page = unescape(partner.get(f"/referrals/{resumed}").get_data(as_text=True))
    assert "The request for information was closed: intake resumed review without it" in page
    assert "Intake needs more information" not in page  # no answer form to be refused
    assert (
        partner.post(
            f"/referrals/{resumed}/information",
            data={"version": load(app, resumed).version, "message": "late"},
        ).status_code
        == 302
    )  # "nothing is being asked any more", not a 422


def test_a_new_request_supersedes_the_open_one(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.NEEDS_INFO)
    intake = client_for(desk.intake)
    assert act(intake, app, reference, "request_info", other_questions="Weight").status_code == 302
    with app.app_context():
        rows = db.session.scalars(
            select(InfoRequest)
            .join(Referral)
            .where(Referral.reference == reference)
            .order_by(InfoRequest.id)
        ).all()
        assert [r.close_reason for r in rows] == [CloseReason.SUPERSEDED, None]


def test_cancelling_an_appointment_goes_back_to_accepted_and_clears_it(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.SCHEDULED)
    response = act(client_for(desk.intake), app, reference, "cancel_appointment", note="Ill")
    assert response.status_code == 302
    referral = load(app, reference)
    assert referral.status is Status.ACCEPTED
    assert referral.appointment_at is None and referral.appointment_mode is None
    assert referral.scheduled_at is not None  # the milestone stays: it happened
    assert events(app, reference)[-1].kind == "cancel_appointment"
    # And it can be booked again.
    with app.app_context():
        when = to_local(utcnow() + timedelta(days=4))
    booked = act(
        client_for(desk.intake),
        app,
        reference,
        "schedule",
        appointment_date=when.date().isoformat(),
        appointment_time="10:00",
        mode="video",
    )
    assert booked.status_code == 302 and load(app, reference).status is Status.SCHEDULED


def test_the_staff_page_has_one_form_per_allowed_action_and_unique_ids(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.IN_REVIEW)
    html = client_for(desk.intake).get(f"/referrals/{reference}").get_data(as_text=True)
    ids = Counter(re.findall(r'\sid="([^"]+)"', html))
    assert [i for i, n in ids.items() if n > 1] == []
    for label_for in re.findall(r'<label[^>]*for="([^"]+)"', html):
        assert label_for in ids, label_for  # every label names a field on the page
    posted = set(re.findall(r"/actions/(\w+)\"", html))
    intake_here = {
        name
        for name, action in form_actions().items()
        if desk
        and Status.IN_REVIEW in action.sources
        and any(role.value == "intake" for role in action.roles)
    }
    assert posted == intake_here


def test_every_action_is_declared_with_its_form_or_as_done_by_the_portal():
    for name, action in ACTIONS.items():
        assert action.label and action.summary, name
        if action.form is None:
            assert action.system or name == "answer_info", name
        else:
            assert action.service is not None and action.done, name


def test_the_statuses_page_is_drawn_from_the_declarations(client_for, desk):
    html = unescape(client_for(desk.partner_a).get("/referrals/statuses").get_data(as_text=True))
    for action in ACTIONS.values():
        assert action.label in html, action.action
    scheduled = html.split('id="status-scheduled"', 1)[1].split("</section>", 1)[0]
    assert "Cancel the appointment" in scheduled and "Accepted" in scheduled


def test_a_form_error_keeps_the_loaded_version_so_a_later_conflict_is_still_shown(
    app, client_for, desk
):
    with app.app_context():
        reference = make_referral(desk, Status.IN_REVIEW)
    clinical = client_for(desk.clinical)
    loaded = load(app, reference).version
    # Meanwhile intake shares a note with the office: the referral moves on a version.
    shared = act(client_for(desk.intake), app, reference, "share_follow_up", message="On it")
    assert shared.status_code == 302
    blank = clinical.post(
        f"/referrals/{reference}/actions/accept", data={"version": loaded, "provider": ""}
    )
    assert blank.status_code == 422
    assert int(hidden(blank.get_data(as_text=True), "accept", "version")) == loaded
    again = clinical.post(
        f"/referrals/{reference}/actions/accept", data={"version": loaded, "provider": "Dr. Park"}
    )
    assert again.status_code == 409  # they are shown what changed before anything happens
    assert load(app, reference).status is Status.IN_REVIEW


def test_partners_see_what_changed_but_not_which_staff_member_did_it(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.IN_REVIEW)
    stale = load(app, reference).version
    assert (
        act(client_for(desk.clinical), app, reference, "accept", provider="Dr. Park").status_code
        == 302
    )
    response = client_for(desk.partner_a).post(
        f"/referrals/{reference}/actions/withdraw", data={"version": stale}
    )
    html = unescape(response.get_data(as_text=True))
    since = html.split("Since you opened this page", 1)[1].split("</ul>", 1)[0]
    assert response.status_code == 409 and "Accepted" in since
    assert "(Clinical)" not in since


def test_a_visit_booked_by_phone_retires_the_patients_link(app, client, client_for, desk):
    from tests.integration.test_patient_links import send_link

    with app.app_context():
        reference = make_referral(desk, Status.ACCEPTED)
        when = to_local(utcnow() + timedelta(days=5))
    path = send_link(app, client_for(desk.intake), reference)
    booked = act(
        client_for(desk.intake),
        app,
        reference,
        "schedule",
        appointment_date=when.date().isoformat(),
        appointment_time="11:00",
        mode="phone",
    )
    assert booked.status_code == 302
    assert act(client_for(desk.intake), app, reference, "cancel_appointment").status_code == 302
    # Back in accepted, the old link must not book one of its stale times.
    opened = client.get(path)
    assert opened.status_code == 409
    assert "Something changed since we sent this link" in opened.get_data(as_text=True)


def test_a_patient_whose_booking_was_cancelled_is_not_told_they_are_booked(
    app, client, client_for, desk
):
    from tests.integration.test_patient_links import DOB, send_link

    with app.app_context():
        reference = make_referral(desk, Status.ACCEPTED)
    path = send_link(app, client_for(desk.intake), reference)
    assert client.post(f"{path}/verify", data=DOB).status_code == 303
    page = client.get(path).get_data(as_text=True)
    slot = re.search(r'value="(slot-\d+)"', page).group(1)
    answered = client.post(f"{path}/answer", data={"choice": slot, "contact": "phone"})
    assert answered.status_code == 303
    assert "You are booked" in client.get(path).get_data(as_text=True)
    assert act(client_for(desk.intake), app, reference, "cancel_appointment").status_code == 302
    done = client.get(path).get_data(as_text=True)
    assert "You are booked" not in done and "Your visit has changed" in done


def test_an_empty_staff_note_is_refused(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.IN_REVIEW)
    response = act(client_for(desk.intake), app, reference, "add_note", note="   ")
    assert response.status_code == 422
    assert "Write the note." in response.get_data(as_text=True)
    assert events(app, reference)[-1].kind != "add_note"
