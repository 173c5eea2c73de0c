"""Partners, service lines and the audit log, as staff manage them."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from portal.extensions import db
from portal.models import Partner, Referral, ServiceLine, Status
from tests.fixtures.desk import make_referral


def test_partner_success_creates_a_partner(app, client_for, desk):
    client = client_for(desk.success)
    response = client.post(
        "/admin/partners/new",
        data={
            "name": "Gamma Discharge Planning",
            "specialty": "Hospital discharge planning",
            "referral_contact_name": "Gia Gamma",
            "referral_contact_email": "Gia@Gamma.example",
            "referral_contact_phone": "202-555-0188",
        },
    )
    assert response.status_code == 302
    with app.app_context():
        partner = db.session.scalar(select(Partner).filter_by(name="Gamma Discharge Planning"))
        assert partner.referral_contact_email == "gia@gamma.example"
        assert partner.referral_contact_phone == "+12025550188"
    assert "Gamma Discharge Planning" in client.get("/admin/partners").get_data(as_text=True)


def test_partner_names_are_unique_and_fields_validated(client_for, desk):
    client = client_for(desk.admin)
    response = client.post(
        "/admin/partners/new",
        data={
            "name": "Alpha Primary Care",
            "specialty": "x",
            "referral_contact_name": "x",
            "referral_contact_email": "x@alpha.example",
        },
    )
    assert response.status_code == 422
    assert "already exists" in response.get_data(as_text=True)
    response = client.post("/admin/partners/new", data={"name": "", "referral_contact_email": "no"})
    assert response.status_code == 422 and "There is a problem" in response.get_data(as_text=True)


@pytest.mark.parametrize(
    ("attr", "path", "status"),
    [
        ("intake", "/admin/partners", 403),
        ("clinical", "/admin/partners", 403),
        ("success", "/admin/users", 403),
        ("success", "/admin/audit", 403),
        ("admin", "/admin/audit", 200),
        ("admin", "/admin/service-lines", 200),
        ("success", "/admin/service-lines", 200),
    ],
)
def test_admin_pages_are_limited_to_their_roles(client_for, desk, attr, path, status):
    assert client_for(getattr(desk, attr)).get(path).status_code == status


def test_service_lines_page_lists_criteria_and_required_items(client_for, desk):
    html = client_for(desk.admin).get("/admin/service-lines").get_data(as_text=True)
    assert "Cardiac event in the last 12 months" in html
    assert "Echocardiogram report (document)" in html


def test_audit_log_shows_views_changes_and_sign_ins_and_filters_by_reference(
    app, client, client_for, desk
):
    with app.app_context():
        reference = make_referral(desk)
    client.sign_in(desk.intake)  # through the pages, so the sign-in is audited
    client.get(f"/referrals/{reference}")
    admin = client_for(desk.admin)
    html = admin.get("/admin/audit").get_data(as_text=True)
    for action in ("sign_in.succeeded", "referral.viewed", "referral.submitted"):
        assert action in html
    filtered = admin.get(f"/admin/audit?target={reference}").get_data(as_text=True)
    assert "referral.viewed" in filtered and "sign_in.succeeded" not in filtered


def test_admin_creates_a_service_line_that_partners_then_see_on_the_form(app, client_for, desk):
    admin = client_for(desk.admin)
    response = admin.post(
        "/admin/service-lines/new",
        data={
            "name": "Dermatology",
            "description": "Teledermatology",
            "eligibility_criteria": "Adults\nNon-urgent skin conditions",
            "required_documents": "Photo of the lesion",
            "required_answers": "How long has it been present?",
            "active": "y",
        },
    )
    assert response.status_code == 302
    with app.app_context():
        line = db.session.scalar(select(ServiceLine).filter_by(name="Dermatology"))
        labels = [(i.kind.value, i.label) for i in line.required_items]
    assert labels == [
        ("document", "Photo of the lesion"),
        ("answer", "How long has it been present?"),
    ]
    partner = client_for(desk.partner_a)
    form_page = partner.get("/referrals/new", follow_redirects=True)
    assert "Dermatology" in form_page.get_data(as_text=True)
    fragment = partner.get(f"/referrals/new/requirements?service_line={line.id}")
    assert "Non-urgent skin conditions" in fragment.get_data(as_text=True)


def test_removing_a_required_item_retires_it_without_touching_old_referrals(app, client_for, desk):
    with app.app_context():
        old_reference = make_referral(desk, Status.NEEDS_INFO)
    admin = client_for(desk.admin)
    form = admin.get(f"/admin/service-lines/{desk.cardio_id}").get_data(as_text=True)
    assert "Echocardiogram report" in form
    response = admin.post(
        f"/admin/service-lines/{desk.cardio_id}",
        data={
            "name": "Cardiac rehabilitation",
            "required_answers": "Medication list",
            "active": "y",
        },
    )
    assert response.status_code == 302
    with app.app_context():
        line = db.session.get(ServiceLine, desk.cardio_id)
        assert [i.label for i in line.required_items] == ["Medication list"]
        assert len(line.all_required_items) == 2
        old = db.session.scalar(select(Referral).filter_by(reference=old_reference))
        assert [i.label for i in old.missing_items] == ["Echocardiogram report", "Medication list"]


def test_only_admins_edit_service_lines(client_for, desk):
    assert client_for(desk.success).get("/admin/service-lines/new").status_code == 403
