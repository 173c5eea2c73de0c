"""Admins disable, re-enable and re-role accounts and end anyone's sessions; what the
audit log keeps of it; and what partner success may see."""

from __future__ import annotations

from sqlalchemy import select

from portal.extensions import db
from portal.models import AuditEntry, Role, Status, User
from tests.fixtures.desk import PASSWORD, make_referral


def account_id(app, email) -> int:
    with app.app_context():
        return db.session.scalar(select(User.id).where(User.email == email))


def sent_to_sign_in(response) -> bool:
    return response.status_code == 302 and "/sign-in" in response.headers["Location"]


def test_an_admin_ends_another_users_session_and_they_are_thrown_out(app, client_for, desk):
    intake = client_for(desk.intake)
    admin = client_for(desk.admin)
    page = admin.get(f"/admin/users/{account_id(app, desk.intake)}").get_data(as_text=True)
    assert "pytest" in page and "127.0.0.1" in page  # device and address of the session
    response = admin.post(f"/admin/users/{account_id(app, desk.intake)}/sessions/end-all")
    assert response.status_code == 302
    assert sent_to_sign_in(intake.get("/queue"))
    assert admin.get("/admin/partners").status_code == 200
    with app.app_context():
        entry = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "session.ended_all")
        ).one()
        assert entry.actor_id == account_id(app, desk.admin)
        assert entry.detail["reason"] == "ended_by_admin"


def test_a_disabled_user_is_out_at_once_and_cannot_sign_in_until_enabled(
    app, client, client_for, desk
):
    partner = client_for(desk.partner_a)
    admin = client_for(desk.admin)
    user_id = account_id(app, desk.partner_a)
    assert admin.post(f"/admin/users/{user_id}/disable").status_code == 302
    assert sent_to_sign_in(partner.get("/referrals/"))
    refused = client.post("/sign-in", data={"email": desk.partner_a, "password": PASSWORD})
    assert refused.status_code == 401
    # Still in the audit log by name.
    audit = admin.get("/admin/audit").get_data(as_text=True)
    assert "Office" in audit and "disabled" in audit
    assert admin.post(f"/admin/users/{user_id}/enable").status_code == 302
    again = client.post("/sign-in", data={"email": desk.partner_a, "password": PASSWORD})
    assert again.status_code == 302


def test_the_last_active_admin_cannot_be_disabled_or_demoted(app, client_for, desk):
    admin = client_for(desk.admin)
    me = account_id(app, desk.admin)
    response = admin.post(f"/admin/users/{me}/disable", follow_redirects=True)
    assert "last active admin" in response.get_data(as_text=True)
    response = admin.post(f"/admin/users/{me}/role", data={"role": "intake"}, follow_redirects=True)
    assert "last active admin" in response.get_data(as_text=True)
    with app.app_context():
        user = db.session.get(User, me)
        assert user.enabled and user.role is Role.ADMIN


def test_a_role_change_ends_the_users_sessions_and_is_audited(app, client_for, desk):
    clinical = client_for(desk.clinical)
    admin = client_for(desk.admin)
    user_id = account_id(app, desk.clinical)
    assert admin.post(f"/admin/users/{user_id}/role", data={"role": "intake"}).status_code == 302
    assert sent_to_sign_in(clinical.get("/queue"))
    with app.app_context():
        assert db.session.get(User, user_id).role is Role.INTAKE
        entry = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "user.role_changed")
        ).one()
        assert entry.detail == {"from_role": "clinical", "to_role": "intake"}


def test_only_admins_manage_accounts(app, client_for, desk):
    user_id = account_id(app, desk.intake)
    for email in (desk.success, desk.intake):
        assert client_for(email).post(f"/admin/users/{user_id}/disable").status_code == 403
    assert client_for(desk.partner_a).get(f"/admin/users/{user_id}").status_code == 404


def test_opening_and_searching_the_queue_is_audited_without_the_search_text(app, client_for, desk):
    intake = client_for(desk.intake)
    intake.get("/queue?status=all&urgency=urgent&q=Quillfeather")
    with app.app_context():
        entry = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "queue.viewed")
        ).one()
        assert entry.detail["urgency"] == "urgent" and entry.detail["searched"] is True
        assert "Quillfeather" not in str(entry.detail)


def test_a_missing_export_is_a_404_and_not_an_export(app, client_for, desk):
    response = client_for(desk.success).get("/scorecard/no-such-table.csv")
    assert response.status_code == 404
    with app.app_context():
        assert not db.session.scalars(
            select(AuditEntry).where(AuditEntry.action.like("%export%"))
        ).all()


def test_partner_success_sees_statuses_and_counts_but_no_clinical_free_text(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.NEEDS_INFO, service_line_id=desk.cardio_id)
    clinical = client_for(desk.clinical)
    intake = client_for(desk.intake)
    from tests.integration.test_workflow import act

    act(intake, app, reference, "add_note", note="Patient anxious about cardiac history")
    success_view = client_for(desk.success).get(f"/referrals/{reference}").get_data(as_text=True)
    clinical_view = clinical.get(f"/referrals/{reference}").get_data(as_text=True)
    for private in ("Patient anxious", "Echocardiogram report", "Snoring", "BMI 31"):
        assert private not in success_view, private
    assert "Patient anxious" in clinical_view and "Echocardiogram report" in clinical_view
    assert "Needs information" in success_view and "item" in success_view


def test_session_lists_cost_the_same_however_many_sessions(app, client_for, desk, count_queries):
    admin = client_for(desk.admin)
    partner = client_for(desk.partner_a)
    pages = (partner, "/account"), (admin, f"/admin/users/{account_id(app, desk.partner_a)}")
    admin.get("/admin/sla")  # the process reads the SLA settings once
    few = []
    for client, path in pages:
        with count_queries() as counted:
            assert client.get(path).status_code == 200
        few.append(counted.count)
    for _ in range(6):
        client_for(desk.partner_a)
    for (client, path), before in zip(pages, few, strict=True):
        with count_queries() as counted:
            assert client.get(path).status_code == 200
        # The session (1), the page's own reads (sessions, recovery codes or the
        # account), and on a staff page the jobs heartbeat for its banner (1): no
        # statement per listed session.
        budget = 5 if client is admin else 4
        assert counted.count == before <= budget, (path, counted.count)
