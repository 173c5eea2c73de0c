"""A referring office's lifecycle: its details edited (two editors at once included),
and the office deactivated, which takes access from its people and its EHRs at once,
and reactivated."""

from __future__ import annotations

import html
import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from portal.accounts.services import set_partner_active
from portal.clock import frozen_at, utcnow
from portal.extensions import db
from portal.models import AuditEntry, OutboxMessage, Partner
from tests.fixtures.desk import PASSWORD, make_referral, user
from tests.integration.test_accounts import invite_partner_user
from tests.integration.test_fhir_auth import make_client, secret_form, token_by_secret


def edit_path(desk) -> str:
    return f"/admin/partners/{desk.partner_a_id}/edit"


def loaded_value(page: str) -> str:
    return html.unescape(re.search(r'name="loaded" type="hidden" value="([^"]*)"', page).group(1))


def details(**changes) -> dict[str, str]:
    return {
        "name": "Alpha Family Medicine",
        "specialty": "Primary care",
        "referral_contact_name": "Ana Alpha",
        "referral_contact_email": "referrals@alpha.example",
        "referral_contact_phone": "",
        **changes,
    }


def office(app, desk) -> Partner:
    with app.app_context():
        partner = db.session.get(Partner, desk.partner_a_id)
        db.session.expunge(partner)
        return partner


def audit_actions(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(select(AuditEntry.action).order_by(AuditEntry.id)))


def is_sent_to_sign_in(response) -> bool:
    return response.status_code == 302 and "/sign-in" in response.headers["Location"]


def test_partner_success_edits_an_offices_details_and_the_change_is_audited(
    app, client_for, desk
):
    success = client_for(desk.success)
    page = success.get(edit_path(desk))
    assert page.status_code == 200
    form = page.get_data(as_text=True)
    loaded = loaded_value(form)
    before = office(app, desk)
    wanted = {
        "name": before.name,
        "specialty": before.specialty,
        "referral_contact_name": "Rosa New",
        "referral_contact_email": "Intake@Alpha.example",
        "referral_contact_phone": "(415) 555-0134",
        "loaded": loaded,
    }
    saved = success.post(edit_path(desk), data=wanted)
    assert saved.status_code == 302
    assert saved.headers["Location"] == f"/admin/partners/{desk.partner_a_id}"
    after = office(app, desk)
    assert after.referral_contact_name == "Rosa New"
    assert after.referral_contact_email == "intake@alpha.example"
    assert after.referral_contact_phone == "+14155550134"  # stored as every phone is
    assert after.name == before.name
    with app.app_context():
        entry = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "partner.updated")
        ).one()
        assert entry.detail["fields"] == (
            "referral_contact_name,referral_contact_email,referral_contact_phone"
        )
    listing = success.get("/admin/partners").get_data(as_text=True)
    assert "intake@alpha.example" in listing
    # Saving the same values again changes nothing and logs nothing.
    fresh = loaded_value(success.get(edit_path(desk)).get_data(as_text=True))
    again = success.post(edit_path(desk), data={**wanted, "loaded": fresh}, follow_redirects=True)
    assert "Nothing was changed." in again.get_data(as_text=True)
    assert audit_actions(app).count("partner.updated") == 1


def test_two_editors_at_once_the_second_is_told_what_changed_and_keeps_their_entries(
    app, client_for, desk
):
    admin, success = client_for(desk.admin), client_for(desk.success)
    before = office(app, desk)
    common = {
        "name": before.name,
        "specialty": before.specialty,
        "referral_contact_name": before.referral_contact_name,
        "referral_contact_email": before.referral_contact_email,
        "referral_contact_phone": before.referral_contact_phone or "",
    }
    admins_loaded = loaded_value(admin.get(edit_path(desk)).get_data(as_text=True))
    success_loaded = loaded_value(success.get(edit_path(desk)).get_data(as_text=True))
    first = admin.post(
        edit_path(desk),
        data={**common, "referral_contact_email": "desk@alpha.example", "loaded": admins_loaded},
    )
    assert first.status_code == 302
    second = success.post(
        edit_path(desk),
        data={**common, "referral_contact_phone": "(415) 555-0199", "loaded": success_loaded},
    )
    assert second.status_code == 409
    page = second.get_data(as_text=True)
    conflict = page[page.index('id="edit-conflict"') :]
    conflict = conflict[: conflict.index("</div>")]
    assert "Contact’s email" in conflict or "Contact's email" in html.unescape(conflict)
    assert "desk@alpha.example" in conflict
    assert "Contact's phone" not in html.unescape(conflict)
    assert 'value="(415) 555-0199"' in page or 'value="+14155550199"' in page  # kept
    assert office(app, desk).referral_contact_phone == before.referral_contact_phone
    assert office(app, desk).referral_contact_email == "desk@alpha.example"
    # Saving again is a decision made knowing the new values: it goes through.
    again = success.post(
        edit_path(desk),
        data={**common, "referral_contact_phone": "(415) 555-0199", "loaded": loaded_value(page)},
    )
    assert again.status_code == 302
    after = office(app, desk)
    assert after.referral_contact_phone == "+14155550199"
    assert after.referral_contact_email == before.referral_contact_email  # theirs, on purpose


@pytest.mark.parametrize(
    "loaded",
    [
        "not json",
        json.dumps(["a", "list"]),
        json.dumps({"name": "only one key"}),
        json.dumps({**details(), "name": 7}),
        json.dumps({**details(), "extra": "x"}),
    ],
)
def test_a_damaged_form_is_refused_with_nothing_saved(app, client_for, desk, loaded):
    success = client_for(desk.success)
    before = office(app, desk)
    response = success.post(edit_path(desk), data={**details(name="Renamed"), "loaded": loaded})
    assert response.status_code == 400
    assert "Open the page again" in response.get_data(as_text=True)
    assert office(app, desk).name == before.name


@pytest.mark.parametrize(
    "loaded", ["x" * 100_000, "{\x00}", "", json.dumps(details()) + "\n" * 2]
)
def test_hostile_loaded_values_are_a_4xx_with_nothing_saved(app, client_for, desk, loaded):
    success = client_for(desk.success)
    before = office(app, desk)
    response = success.post(edit_path(desk), data={**details(name="Renamed"), "loaded": loaded})
    assert response.status_code in (400, 409, 422)
    assert office(app, desk).name == before.name


def test_another_offices_name_is_refused_on_the_form(app, client_for, desk):
    success = client_for(desk.success)
    taken = office(app, desk)
    with app.app_context():
        beta_name = db.session.get(Partner, desk.partner_b_id).name
    loaded = loaded_value(success.get(edit_path(desk)).get_data(as_text=True))
    response = success.post(
        edit_path(desk),
        data={
            "name": beta_name,
            "specialty": taken.specialty,
            "referral_contact_name": taken.referral_contact_name,
            "referral_contact_email": taken.referral_contact_email,
            "referral_contact_phone": "",
            "loaded": loaded,
        },
    )
    assert response.status_code == 422
    assert "already exists" in response.get_data(as_text=True)
    assert office(app, desk).name == taken.name


def test_only_partner_managers_edit_and_only_admins_deactivate(client_for, desk):
    intake = client_for(desk.intake)
    assert intake.get(edit_path(desk)).status_code == 403
    success = client_for(desk.success)
    access = f"/admin/partners/{desk.partner_a_id}/access"
    assert success.post(access, data={"active": "no"}).status_code == 403
    admin = client_for(desk.admin)
    assert admin.post(access, data={"active": "maybe"}).status_code == 400
    assert admin.post(access, data={}).status_code == 400
    assert admin.post("/admin/partners/999999/access", data={"active": "no"}).status_code == 404
    assert admin.get("/admin/partners/999999/edit").status_code == 404


def read_task(client, token: str, reference: str):
    return client.get(f"/fhir/Task/{reference}", headers={"Authorization": f"Bearer {token}"})


def test_deactivating_an_office_takes_its_access_at_once_and_reactivating_gives_it_back(
    app, client, client_for, desk
):
    with app.app_context():
        reference = make_referral(desk)
    office_user = client_for(desk.partner_a)
    copied_cookie = office_user.get_cookie(app.config["AUTH_COOKIE_NAME"]).value
    other_office = client_for(desk.partner_b)
    etag = office_user.get(f"/referrals/{reference}/timeline").headers["ETag"]
    client_id, secret = make_client(app, desk, secret=True)
    ehr_token = token_by_secret(client, client_id, secret)
    assert read_task(client, ehr_token, reference).status_code == 200

    admin = client_for(desk.admin)
    done = admin.post(
        f"/admin/partners/{desk.partner_a_id}/access", data={"active": "no"}, follow_redirects=True
    )
    page = done.get_data(as_text=True)
    assert "is deactivated" in page and 'id="office-deactivated"' in page
    assert "reactivate it before inviting" in page and "Send invitation" not in page

    # Its people: out now, on full pages and on the timeline's early answer.
    assert is_sent_to_sign_in(office_user.get("/referrals/"))
    thief = app.test_client()
    thief.set_cookie(app.config["AUTH_COOKIE_NAME"], copied_cookie)
    assert is_sent_to_sign_in(
        thief.get(f"/referrals/{reference}/timeline", headers={"If-None-Match": etag})
    )
    refused = client.post("/sign-in", data={"email": desk.partner_a, "password": PASSWORD})
    assert refused.status_code == 401
    # Its EHR: the token it holds and any new one are refused.
    assert read_task(client, ehr_token, reference).status_code == 401
    assert client.post("/auth/token", data=secret_form(client_id, secret)).status_code == 401
    # Another office and the desk carry on; the desk sees why the office is quiet.
    assert other_office.get("/referrals/").status_code == 200
    staff_page = client_for(desk.intake).get(f"/referrals/{reference}")
    assert "Office deactivated" in staff_page.get_data(as_text=True)
    assert "Deactivated" in admin.get("/admin/partners").get_data(as_text=True)
    actions = audit_actions(app)
    assert "partner.deactivated" in actions
    with app.app_context():
        ended = db.session.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "session.ended_all",
                AuditEntry.detail["reason"].as_string() == "partner_deactivated",
            )
        ).all()
        assert sum(entry.detail["sessions"] for entry in ended) >= 1
        failed = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "sign_in.failed")
        ).all()
        assert failed[-1].detail["reason"] == "office_deactivated"

    admin.post(f"/admin/partners/{desk.partner_a_id}/access", data={"active": "yes"})
    assert "partner.activated" in audit_actions(app)
    # The old session does not come back; signing in again works.
    assert is_sent_to_sign_in(thief.get("/referrals/"))
    assert client.post(
        "/sign-in", data={"email": desk.partner_a, "password": PASSWORD}
    ).status_code == 302
    assert client.post("/auth/token", data=secret_form(client_id, secret)).status_code == 200


def test_a_session_made_as_the_office_was_deactivated_is_refused_too(
    app, client_for, desk
):
    """A sign-in that read the office as active while an admin deactivated it: its
    session is made after the others ended, and the rule read on every request ends it."""
    with app.app_context():
        reference = make_referral(desk)
    office_user = client_for(desk.partner_a)
    etag = office_user.get(f"/referrals/{reference}/timeline").headers["ETag"]
    assert office_user.get(
        f"/referrals/{reference}/timeline", headers={"If-None-Match": etag}
    ).status_code == 304
    with app.app_context():
        office_row = update(Partner).where(Partner.id == desk.partner_a_id)
        db.session.execute(office_row.values(active=False))
        db.session.commit()
    assert is_sent_to_sign_in(
        office_user.get(f"/referrals/{reference}/timeline", headers={"If-None-Match": etag})
    )
    assert is_sent_to_sign_in(office_user.get("/referrals/"))


def test_a_deactivated_office_gets_no_new_users_and_its_invitations_wait(
    app, client, client_for, desk
):
    success = client_for(desk.success)
    path = invite_partner_user(success, desk).split(":8000", 1)[1]
    client_for(desk.admin).post(
        f"/admin/partners/{desk.partner_a_id}/access", data={"active": "no"}
    )
    opened = client.get(path)
    assert opened.status_code == 410
    assert "access to the referral portal is paused" in opened.get_data(as_text=True)
    invited = success.post(
        f"/admin/partners/{desk.partner_a_id}",
        data={"full_name": "Late Comer", "email": "late@alpha.example"},
    )
    assert invited.status_code == 422
    assert "reactivate it before inviting" in invited.get_data(as_text=True)
    with app.app_context():
        assert not db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.recipient == "late@alpha.example")
        ).all()


def test_a_deactivated_offices_user_gets_no_password_reset(app, client, client_for, desk):
    client_for(desk.admin).post(
        f"/admin/partners/{desk.partner_a_id}/access", data={"active": "no"}
    )
    answer = client.post("/password/forgot", data={"email": desk.partner_a})
    assert answer.status_code in (200, 302)
    with app.app_context():
        assert not db.session.scalars(
            select(OutboxMessage).where(OutboxMessage.recipient == desk.partner_a)
        ).all()


def stored_details(app, desk) -> dict:
    with app.app_context():
        partner = db.session.get(Partner, desk.partner_a_id)
        return {
            "name": partner.name,
            "specialty": partner.specialty,
            "referral_contact_name": partner.referral_contact_name,
            "referral_contact_email": partner.referral_contact_email,
            "referral_contact_phone": partner.referral_contact_phone,
        }


@pytest.mark.parametrize("poison", ["\u0000", "\ud800"])
def test_hostile_escaped_loaded_values_are_a_4xx_not_a_500(app, client_for, desk, poison):
    """A JSON escape in `loaded` (a NUL, a lone surrogate) is refused like the same
    character typed into a field: it never reaches the UPDATE's WHERE."""
    success = client_for(desk.success)
    stored = stored_details(app, desk)
    loaded = json.dumps({**stored, "specialty": stored["specialty"] + poison})
    response = success.post(
        edit_path(desk),
        data={**details(name="Renamed", specialty=stored["specialty"],
                        referral_contact_name=stored["referral_contact_name"],
                        referral_contact_email=stored["referral_contact_email"]),
              "loaded": loaded},
    )
    assert response.status_code in (400, 409, 422), response.status_code
    assert office(app, desk).name == stored["name"]


def test_an_ehr_token_from_before_a_deactivation_does_not_come_back_with_reactivation(
    app, client, client_for, desk
):
    """Reactivating brings back no EHR token, as it brings back no session: the
    office's clients' credentials move on at the deactivation."""
    from tests.integration.test_fhir_auth import make_client, token_by_secret

    with app.app_context():
        reference = make_referral(desk)
    client_id, secret = make_client(app, desk, secret=True)
    old_token = token_by_secret(client, client_id, secret)
    admin = client_for(desk.admin)
    access = f"/admin/partners/{desk.partner_a_id}/access"
    admin.post(access, data={"active": "no"})
    assert read_task(client, old_token, reference).status_code == 401
    admin.post(access, data={"active": "yes"})
    assert read_task(client, old_token, reference).status_code == 401


def test_the_access_switch_sent_twice_is_refused_not_read_as_its_first_copy(
    app, client_for, desk
):
    admin = client_for(desk.admin)
    response = admin.post(
        f"/admin/partners/{desk.partner_a_id}/access",
        data="active=no&active=yes",
        content_type="application/x-www-form-urlencoded",
    )
    assert response.status_code == 400, response.status_code
    assert office(app, desk).active


def test_an_ehr_that_kept_asking_while_its_office_was_deactivated_gets_a_token_on_reactivation(
    app, client, desk
):
    """The right secret refused while the office was deactivated is no guess: an EHR
    retrying on its schedule gets a token as soon as the office is reactivated."""

    from tests.integration.test_fhir_auth import make_client, secret_form

    client_id, secret = make_client(app, desk, secret=True)
    start = utcnow()
    with app.app_context():
        set_partner_active(db.session.get(Partner, desk.partner_a_id), False, by=user(desk.admin))
        db.session.commit()
    # The EHR asks every four minutes, as a scheduled integration does.
    for attempt in range(12):
        with frozen_at(start + timedelta(minutes=4 * attempt)):
            refused = client.post("/auth/token", data=secret_form(client_id, secret))
            assert refused.status_code == 401, (attempt, refused.status_code)
    with frozen_at(start + timedelta(minutes=45)), app.app_context():
        set_partner_active(db.session.get(Partner, desk.partner_a_id), True, by=user(desk.admin))
        db.session.commit()
    with frozen_at(start + timedelta(minutes=45, seconds=30)):
        again = client.post("/auth/token", data=secret_form(client_id, secret))
    assert again.status_code == 200, (again.status_code, again.get_json())


def test_deeply_nested_loaded_json_is_a_400_not_a_500(app, client_for, desk):
    """Nested brackets under MAX_LOADED_LENGTH are refused, not parsed to the
    recursion limit."""
    success = client_for(desk.success)
    stored = stored_details(app, desk)
    response = success.post(
        edit_path(desk),
        data={**details(name="Renamed", specialty=stored["specialty"],
                        referral_contact_name=stored["referral_contact_name"],
                        referral_contact_email=stored["referral_contact_email"]),
              "loaded": "[" * 1999 + "]" * 1999},
    )
    assert response.status_code == 400, response.status_code
    assert office(app, desk).name == stored["name"]


def test_a_user_who_kept_signing_in_while_the_office_was_deactivated_is_not_held_back(
    app, client, client_for, desk
):
    """The right password is no guess: refusals while the office was deactivated do not
    build up the wait that slows guessing."""
    admin = client_for(desk.admin)
    access = f"/admin/partners/{desk.partner_a_id}/access"
    admin.post(access, data={"active": "no"})
    for _try in range(8):
        refused = client.post("/sign-in", data={"email": desk.partner_a, "password": PASSWORD})
        assert refused.status_code == 401
    admin.post(access, data={"active": "yes"})
    signed_in = client.post("/sign-in", data={"email": desk.partner_a, "password": PASSWORD})
    assert signed_in.status_code == 302
