"""An open referral page's poll when nothing changed: answered early, in one statement,
and never for a session or a referral the view itself would refuse."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import bindparam, func, select, update
from sqlalchemy.exc import OperationalError

from portal import create_app
from portal.clock import frozen_at, utcnow
from portal.config import TestConfig
from portal.extensions import db
from portal.models import AuditEntry, Referral, User
from portal.referrals import services
from portal.referrals.timeline_poll import PreparedRead, TimelinePoll
from tests.fixtures.desk import PASSWORD, make_referral, user


def timeline(reference: str) -> str:
    return f"/referrals/{reference}/timeline"


def poll(client, reference: str, etag: str, **headers):
    return client.get(timeline(reference), headers={"If-None-Match": etag, **headers})


def copied(app, token: str):
    """Another browser holding a copy of a session cookie."""
    thief = app.test_client()
    thief.set_cookie(app.config["AUTH_COOKIE_NAME"], token)
    return thief


def is_sent_to_sign_in(response) -> bool:
    return response.status_code == 302 and "/sign-in" in response.headers["Location"]


def audit_rows(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(AuditEntry.id)))


def staff_note(app, desk, reference: str, note: str) -> None:
    with app.app_context():
        referral = db.session.scalar(select(Referral).where(Referral.reference == reference))
        services.add_staff_note(referral, user(desk.intake), expected_version=None, note=note)
        db.session.commit()


@pytest.fixture
def reference(app, desk) -> str:
    with app.app_context():
        return make_referral(desk)


def test_nothing_new_is_a_304_in_one_statement_with_no_audit_row(
    app, client_for, desk, reference, count_queries
):
    partner = client_for(desk.partner_a)
    etag = partner.get(timeline(reference)).headers["ETag"]
    audits = audit_rows(app)
    with count_queries() as counted:
        unchanged = poll(partner, reference, etag, **{"HX-Request": "true"})
    assert unchanged.status_code == 304 and unchanged.data == b""
    assert unchanged.headers["ETag"] == etag
    assert counted.count == 1  # session, user, referral, version and newest event at once
    assert audit_rows(app) == audits


def test_the_early_304_has_the_headers_of_the_views_304(
    app, client_for, desk, reference, monkeypatch
):
    partner = client_for(desk.partner_a)
    etag = partner.get(timeline(reference)).headers["ETag"]
    early = poll(partner, reference, etag)
    with monkeypatch.context() as view_only:
        view_only.setattr(TimelinePoll, "_not_modified", lambda self, environ: None)
        from_the_view = poll(partner, reference, etag)
    assert early.status_code == from_the_view.status_code == 304
    assert len(early.headers["X-Request-ID"]) == 12
    assert early.headers["X-Request-ID"] != from_the_view.headers["X-Request-ID"]
    assert [(k, v) for k, v in early.headers if k != "X-Request-ID"] == [
        (k, v) for k, v in from_the_view.headers if k != "X-Request-ID"
    ]


def test_behind_a_proxy_the_304_keeps_its_request_id_and_https_headers(
    database_url, desk, monkeypatch
):
    app = create_app(TestConfig, DATABASE_URL=database_url, TRUSTED_PROXY_COUNT=1)
    with app.app_context():
        reference = make_referral(desk)
        from tests.conftest import PortalClient

        client = PortalClient(app, app.response_class, use_cookies=True)
        client.sign_in_directly(desk.partner_a)
    proxied = {"X-Forwarded-Proto": "https", "X-Request-ID": "proxy-id-0042"}
    etag = client.get(timeline(reference), headers=proxied).headers["ETag"]
    early = poll(client, reference, etag, **proxied)
    monkeypatch.setattr(TimelinePoll, "_not_modified", lambda self, environ: None)
    from_the_view = poll(client, reference, etag, **proxied)
    assert early.status_code == 304 and early.headers["X-Request-ID"] == "proxy-id-0042"
    assert "Strict-Transport-Security" in early.headers
    assert list(early.headers) == list(from_the_view.headers)
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


def test_news_after_a_poll_comes_with_a_new_etag_and_is_audited(app, client_for, desk, reference):
    partner = client_for(desk.partner_a)
    etag = partner.get(timeline(reference)).headers["ETag"]
    assert poll(partner, reference, etag).status_code == 304
    with app.app_context():
        referral = db.session.scalar(select(Referral).where(Referral.reference == reference))
        services.record_first_touch(referral, user(desk.intake), expected_version=None)
        db.session.commit()
    audits = audit_rows(app)
    changed = poll(partner, reference, etag)
    assert changed.status_code == 200
    assert "Intake has picked up the referral" in changed.get_data(as_text=True)
    assert changed.headers["ETag"] != etag
    assert audit_rows(app) == audits + 1
    assert poll(partner, reference, changed.headers["ETag"]).status_code == 304


def test_a_staff_note_is_news_to_staff_and_not_to_the_partner(app, client_for, desk, reference):
    partner, staff = client_for(desk.partner_a), client_for(desk.intake)
    partner_etag = partner.get(timeline(reference)).headers["ETag"]
    staff_etag = staff.get(timeline(reference)).headers["ETag"]
    assert partner_etag != staff_etag
    staff_note(app, desk, reference, "Spouse called about transport")
    for_staff = poll(staff, reference, staff_etag)
    assert for_staff.status_code == 200 and "about transport" in for_staff.get_data(as_text=True)
    assert poll(partner, reference, partner_etag).status_code == 304
    assert poll(staff, reference, for_staff.headers["ETag"]).status_code == 304


def test_another_partners_referral_is_never_a_304(app, client_for, desk, reference):
    owner_etag = client_for(desk.partner_a).get(timeline(reference)).headers["ETag"]
    other = client_for(desk.partner_b)
    assert poll(other, reference, owner_etag).status_code == 404
    staff_etag = client_for(desk.intake).get(timeline(reference)).headers["ETag"]
    assert poll(other, reference, staff_etag).status_code == 404


def test_an_etag_of_the_other_audience_gets_the_fragment(app, client_for, desk, reference):
    partner, staff = client_for(desk.partner_a), client_for(desk.intake)
    partner_etag = partner.get(timeline(reference)).headers["ETag"]
    staff_etag = staff.get(timeline(reference)).headers["ETag"]
    assert poll(partner, reference, staff_etag).status_code == 200
    assert poll(staff, reference, partner_etag).status_code == 200


def test_a_copied_cookie_stops_polling_when_its_session_ends(app, client_for, desk, reference):
    partner = client_for(desk.partner_a)
    token = partner.get_cookie(app.config["AUTH_COOKIE_NAME"]).value
    etag = partner.get(timeline(reference)).headers["ETag"]
    assert poll(copied(app, token), reference, etag).status_code == 304
    assert partner.post("/sign-out").status_code == 302
    assert is_sent_to_sign_in(poll(copied(app, token), reference, etag))
    htmx = poll(copied(app, token), reference, etag, **{"HX-Request": "true"})
    assert htmx.status_code == 204 and "/sign-in" in htmx.headers["HX-Redirect"]


def test_disabling_the_user_stops_their_polls(app, client_for, desk, reference):
    partner = client_for(desk.partner_a)
    etag = partner.get(timeline(reference)).headers["ETag"]
    with app.app_context():
        user_id = user(desk.partner_a).id
    assert client_for(desk.admin).post(f"/admin/users/{user_id}/disable").status_code == 302
    assert is_sent_to_sign_in(poll(partner, reference, etag))


def test_a_session_row_left_behind_by_a_disabled_user_signs_nobody_in(
    app, client_for, desk, reference
):
    partner = client_for(desk.partner_a)
    etag = partner.get(timeline(reference)).headers["ETag"]
    with app.app_context():
        db.session.execute(update(User).where(User.email == desk.partner_a).values(enabled=False))
        db.session.commit()
    assert is_sent_to_sign_in(poll(partner, reference, etag))


def test_a_password_change_elsewhere_stops_the_other_browsers_polls(
    app, client_for, desk, reference
):
    laptop, phone = client_for(desk.partner_a), client_for(desk.partner_a)
    etag = phone.get(timeline(reference)).headers["ETag"]
    new = "a different long passphrase"
    done = laptop.post(
        "/account/password",
        data={"current_password": PASSWORD, "password": new, "confirm": new},
    )
    assert done.status_code == 302
    assert is_sent_to_sign_in(poll(phone, reference, etag))
    assert poll(laptop, reference, etag).status_code == 304  # this browser carries on


def test_polling_is_not_activity_and_an_idle_session_ends_on_time(app, client_for, desk, reference):
    staff = client_for(desk.intake)  # 30 idle minutes
    etag = staff.get(timeline(reference)).headers["ETag"]
    start = utcnow()
    for minutes in (10, 20, 29):
        with frozen_at(start + timedelta(minutes=minutes)):
            assert poll(staff, reference, etag).status_code == 304, minutes
    with frozen_at(start + timedelta(minutes=31)):
        response = poll(staff, reference, etag)
        assert is_sent_to_sign_in(response)
        follow = staff.get(response.headers["Location"]).get_data(as_text=True)
    assert "signed out after 30 minutes without activity" in follow


def test_no_poll_outlives_the_sessions_absolute_lifetime(app, client_for, desk, reference):
    partner = client_for(desk.partner_a)
    etag = partner.get(timeline(reference)).headers["ETag"]
    start = utcnow()
    for minutes in range(100, 12 * 60, 100):  # active on other pages meanwhile
        with frozen_at(start + timedelta(minutes=minutes)):
            assert partner.get("/referrals/").status_code == 200
            assert poll(partner, reference, etag).status_code == 304
    with frozen_at(start + timedelta(hours=12, minutes=1)):
        assert is_sent_to_sign_in(poll(partner, reference, etag))


def test_a_session_awaiting_its_second_factor_cannot_poll(app, desk, reference):
    with app.app_context():
        from portal.accounts.sessions import create_session_row

        staff = user(desk.intake)
        token = create_session_row(staff, authenticated=False, user_agent="pytest", address="x")
        db.session.commit()
        referral = db.session.scalar(select(Referral).where(Referral.reference == reference))
        last = services.timeline_state(staff, reference)[2]
        etag = services.timeline_etag(reference, referral.version, last, partner=False)
    assert is_sent_to_sign_in(poll(copied(app, token), reference, etag))


@pytest.mark.parametrize(
    "if_none_match",
    ["*", "\x00" * 1000, 'W/"{etag}"', '"{etag}", "x"', "{etag}", '"{etag}-staff"'],
)
def test_other_forms_of_if_none_match_get_the_fragment(client_for, desk, reference, if_none_match):
    partner = client_for(desk.partner_a)
    etag = partner.get(timeline(reference)).headers["ETag"].strip('"')
    response = poll(partner, reference, if_none_match.format(etag=etag))
    assert response.status_code == 200


def test_hostile_cookies_and_paths_are_refused_as_before(app, client_for, desk, reference):
    etag = client_for(desk.partner_a).get(timeline(reference)).headers["ETag"]
    for forged in ("\x00", "x" * 101, "é" * 50):
        assert is_sent_to_sign_in(poll(copied(app, forged), reference, etag))
    partner = client_for(desk.partner_a)
    assert poll(partner, reference.lower(), etag).status_code == 404
    assert (
        partner.get(timeline(reference) + "/", headers={"If-None-Match": etag}).status_code == 404
    )
    assert partner.head(timeline(reference), headers={"If-None-Match": etag}).status_code == 304


@pytest.mark.parametrize(
    "failure",
    [ValueError("a bind processor refused the value"), OperationalError("SELECT", {}, None)],
)
def test_a_failing_early_read_leaves_the_poll_to_the_view(
    app, client_for, desk, reference, monkeypatch, count_queries, failure
):
    partner = client_for(desk.partner_a)
    etag = partner.get(timeline(reference)).headers["ETag"]

    def fails(self, **values):
        raise failure

    monkeypatch.setattr(PreparedRead, "first", fails)
    with count_queries() as counted:
        answered = poll(partner, reference, etag)
    assert answered.status_code == 304 and answered.headers["ETag"] == etag
    assert counted.count > 1  # the view's own statements answered it


def test_a_prepared_read_takes_plain_bound_values_only(app):
    with app.app_context():
        engine = db.engine
    listed = select(Referral.id).where(
        Referral.reference.in_(bindparam("references", expanding=True))
    )
    with pytest.raises(ValueError, match="plain bound values"):
        PreparedRead(listed, engine)
    one = PreparedRead(
        select(Referral.id).where(Referral.reference == bindparam("reference")), engine
    )
    assert one.first(reference="R-0000-0000") is None
