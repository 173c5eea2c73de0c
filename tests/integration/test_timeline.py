"""The referral page's live timeline, as the partner and as staff see it."""

from __future__ import annotations

from sqlalchemy import func, select

from portal.extensions import db
from portal.models import AuditEntry, Referral, Status
from portal.referrals import services
from tests.fixtures.desk import make_referral, user


def staff_note(app, desk, reference, note):
    with app.app_context():
        referral = db.session.scalar(select(Referral).where(Referral.reference == reference))
        services.add_staff_note(referral, user(desk.intake), expected_version=None, note=note)
        db.session.commit()


def test_partner_sees_partner_visible_events_and_the_outcome_class(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.ACCEPTED)
    staff_note(app, desk, reference, "Patient's spouse called about transport")
    html = client_for(desk.partner_a).get(f"/referrals/{reference}").get_data(as_text=True)
    assert "Accepted and assigned to Dr. Park" in html
    assert "Intake has picked up the referral" in html
    assert 'id="current-outcome">Pending' in html
    assert "transport" not in html and "Staff note" not in html


def test_staff_see_staff_only_events_and_notes(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.ACCEPTED)
    staff_note(app, desk, reference, "Patient's spouse called about transport")
    html = client_for(desk.intake).get(f"/referrals/{reference}").get_data(as_text=True)
    assert "called about transport" in html and "Staff only" in html


def test_timeline_fragment_polls_itself_and_answers_304_when_nothing_changed(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk)
    partner = client_for(desk.partner_a)
    first = partner.get(f"/referrals/{reference}/timeline", headers={"HX-Request": "true"})
    html = first.get_data(as_text=True)
    assert first.status_code == 200 and "<html" not in html
    assert 'hx-trigger="every 1s"' in html
    etag = first.headers["ETag"]
    assert etag in html.replace("\\u0022", '"').replace('\\"', '"')

    unchanged = partner.get(
        f"/referrals/{reference}/timeline", headers={"If-None-Match": etag, "HX-Request": "true"}
    )
    assert unchanged.status_code == 304 and unchanged.data == b""

    staff_note(app, desk, reference, "internal")  # staff-only, but the version moves on
    with app.app_context():
        referral = db.session.scalar(select(Referral).where(Referral.reference == reference))
        services.record_first_touch(referral, user(desk.intake), expected_version=None)
        db.session.commit()
    changed = partner.get(f"/referrals/{reference}/timeline", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert "Intake has picked up the referral" in changed.get_data(as_text=True)
    assert changed.headers["ETag"] != etag


def test_an_unchanged_poll_costs_one_small_query_and_no_audit_row(
    app, client_for, desk, count_queries
):
    with app.app_context():
        reference = make_referral(desk)
    partner = client_for(desk.partner_a)
    etag = partner.get(f"/referrals/{reference}/timeline").headers["ETag"]
    with app.app_context():
        audits_before = db.session.scalar(select(func.count(AuditEntry.id)))
    with count_queries() as counter:
        response = partner.get(f"/referrals/{reference}/timeline", headers={"If-None-Match": etag})
    assert response.status_code == 304
    assert counter.count <= 3  # the user, the referral, its newest visible event
    with app.app_context():
        assert db.session.scalar(select(func.count(AuditEntry.id))) == audits_before


def test_viewing_a_referral_is_audited(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk)
    client_for(desk.clinical).get(f"/referrals/{reference}")
    with app.app_context():
        entry = db.session.scalar(select(AuditEntry).where(AuditEntry.action == "referral.viewed"))
        assert entry.target_id == reference


def test_partner_success_and_admin_do_not_see_patient_details(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk)
    for email in (desk.success, desk.admin):
        html = client_for(email).get(f"/referrals/{reference}").get_data(as_text=True)
        assert "Quillfeather" not in html and "1961" not in html
        assert "not shown to your role" in html
    queue = client_for(desk.success).get("/queue").get_data(as_text=True)
    assert reference in queue and "Quillfeather" not in queue


def test_partner_list_is_newest_first_with_status_and_last_update(app, client_for, desk):
    with app.app_context():
        older = make_referral(desk, Status.ACCEPTED)
        newer = make_referral(desk)
    html = client_for(desk.partner_a).get("/referrals/").get_data(as_text=True)
    assert html.index(newer) < html.index(older)
    assert "Accepted" in html and "Submitted" in html and "just now" in html


def test_needs_info_shows_a_banner_in_the_list_and_on_the_page(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.NEEDS_INFO)
    partner = client_for(desk.partner_a)
    assert "Action needed" in partner.get("/referrals/").get_data(as_text=True)
    page = partner.get(f"/referrals/{reference}").get_data(as_text=True)
    assert "Intake needs more information" in page and "Echocardiogram report" in page
    assert f"/referrals/{reference}/information" in page  # answered in place


def test_documents_download_for_the_partner_and_clinical_staff_only(app, client_for, desk):
    from tests.fixtures.desk import PDF

    with app.app_context():
        reference = make_referral(desk, service_line_id=desk.cardio_id)
        document_id = (
            db.session.scalar(select(Referral).where(Referral.reference == reference))
            .documents[0]
            .id
        )
    path = f"/referrals/{reference}/documents/{document_id}"
    for email in (desk.partner_a, desk.clinical, desk.intake):
        response = client_for(email).get(path)
        assert response.status_code == 200 and response.data == PDF
        assert response.headers["Content-Disposition"].startswith("attachment;")
        assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert client_for(desk.success).get(path).status_code == 403


def test_referral_page_query_count_does_not_grow_with_its_history(
    app, client_for, desk, count_queries
):
    from portal.models import ContactMethod, OutreachResult

    with app.app_context():
        reference = make_referral(desk, Status.ACCEPTED)
    client = client_for(desk.intake)
    with count_queries() as short_history:
        assert client.get(f"/referrals/{reference}").status_code == 200
    with app.app_context():
        referral = db.session.scalar(select(Referral).where(Referral.reference == reference))
        for _ in range(6):
            services.log_outreach(
                referral,
                user(desk.intake),
                expected_version=None,
                channel=ContactMethod.PHONE,
                result=OutreachResult.NO_ANSWER,
            )
            services.add_staff_note(
                referral, user(desk.clinical), expected_version=None, note="note"
            )
        db.session.commit()
    with count_queries() as long_history:
        assert client.get(f"/referrals/{reference}").status_code == 200
    assert long_history.count == short_history.count
