"""A service line's referral packet: admins write it, partners read it beside the form
and print it; "what happens after" is written from the SLA targets in force."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import func, select

from portal.clock import utcnow
from portal.extensions import db
from portal.models import AuditEntry, ServiceLine
from portal.service_lines.packets import (
    business_time_in_words,
    text_blocks,
    what_happens_after,
)

CARDIO_FORM = {
    "name": "Cardiac rehabilitation",
    "description": "Supervised virtual cardiac rehab after a cardiac event.",
    "eligibility_criteria": "Cardiac event in the last 12 months\nCleared for exercise",
    "required_documents": "Echocardiogram report",
    "required_answers": "Medication list",
    "active": "y",
}
PACKET = {
    "packet_treats": "Twelve weeks of supervised exercise by video.\n"
    "- After a heart attack or a stent\n- Stable heart failure",
    "packet_how_to_submit": "Fax the referral to (202) 555-0199 if the portal is down.",
    "packet_after": "We send you a progress summary at weeks 6 and 12.",
    "packet_contacts": "Cardiac rehab nurse line: (202) 555-0112",
}


def packet_page(client, line_id: int) -> str:
    response = client.get(f"/service-lines/{line_id}/packet")
    assert response.status_code == 200
    return response.get_data(as_text=True)


def words(html: str) -> str:
    """The page's text as a reader reads it: no tags, entities decoded, spaces collapsed."""
    from html import unescape

    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def stored_line(app, line_id: int) -> ServiceLine:
    with app.app_context():
        line = db.session.get(ServiceLine, line_id)
        db.session.expunge(line)
        return line


def audit_count(app) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count(AuditEntry.id)))


# --- Admins write it ----------------------------------------------------------------------


def test_admin_writes_the_packet_and_partners_read_it(app, client_for, desk):
    admin = client_for(desk.admin)
    form = admin.get(f"/admin/service-lines/{desk.cardio_id}").get_data(as_text=True)
    assert "What we treat" in form and "Left empty, the packet gives the practice phone" in form
    before = utcnow()
    response = admin.post(f"/admin/service-lines/{desk.cardio_id}", data=CARDIO_FORM | PACKET)
    assert response.status_code == 302
    line = stored_line(app, desk.cardio_id)
    assert line.packet_contacts == PACKET["packet_contacts"]
    assert before <= line.packet_updated_at <= utcnow()
    with app.app_context():
        entry = db.session.scalars(select(AuditEntry).order_by(AuditEntry.id.desc())).first()
        assert entry.action == "service_line.saved"
        assert entry.detail["packet_changed"] is True

    text = words(packet_page(client_for(desk.partner_a), desk.cardio_id))
    assert "Twelve weeks of supervised exercise by video." in text
    assert "Fax the referral to (202) 555-0199" in text
    assert "We send you a progress summary at weeks 6 and 12." in text
    assert "Cardiac rehab nurse line: (202) 555-0112" in text
    assert "Echocardiogram report (a document: PDF, PNG or JPEG)" in text
    assert "Cleared for exercise" in text
    # The admin's text replaces the defaults.
    assert "(202) 555-0100" not in text and "choose “New referral”" not in text


def test_lines_starting_with_a_dash_become_a_list(app, client_for, desk):
    admin = client_for(desk.admin)
    admin.post(f"/admin/service-lines/{desk.cardio_id}", data=CARDIO_FORM | PACKET)
    html = packet_page(client_for(desk.partner_a), desk.cardio_id)
    assert "<ul><li>After a heart attack or a stent</li><li>Stable heart failure</li></ul>" in html
    assert "<p>Twelve weeks of supervised exercise by video.</p>" in html


def test_text_blocks_gather_consecutive_list_lines():
    blocks = text_blocks("Intro\n\n- one\n* two\n• three\nOutro\n- four")
    assert [(b.is_list, b.lines) for b in blocks] == [
        (False, ("Intro",)),
        (True, ("one", "two", "three")),
        (False, ("Outro",)),
        (True, ("four",)),
    ]


def test_last_updated_moves_only_when_the_packet_changes(app, client_for, desk):
    admin = client_for(desk.admin)
    admin.post(f"/admin/service-lines/{desk.cardio_id}", data=CARDIO_FORM | PACKET)
    long_ago = datetime(2026, 3, 2, 15, 0, tzinfo=UTC)
    with app.app_context():
        db.session.get(ServiceLine, desk.cardio_id).packet_updated_at = long_ago
        db.session.commit()
    partner = client_for(desk.partner_a)
    assert "Last updated Mon, Mar 2, 2026." in words(packet_page(partner, desk.cardio_id))

    # Saved again as it was: the date stays. Deactivated and reactivated: it stays too.
    admin.post(f"/admin/service-lines/{desk.cardio_id}", data=CARDIO_FORM | PACKET)
    assert stored_line(app, desk.cardio_id).packet_updated_at == long_ago
    inactive = {k: v for k, v in (CARDIO_FORM | PACKET).items() if k != "active"}
    admin.post(f"/admin/service-lines/{desk.cardio_id}", data=inactive)
    admin.post(f"/admin/service-lines/{desk.cardio_id}", data=CARDIO_FORM | PACKET)
    assert stored_line(app, desk.cardio_id).packet_updated_at == long_ago

    # A criterion, a required item or a packet text changed: the date moves.
    for change in (
        {"eligibility_criteria": "Cleared for exercise"},
        {"required_answers": "Medication list\nBlood pressure"},
        {"packet_contacts": "Call the nurse line."},
    ):
        admin.post(f"/admin/service-lines/{desk.cardio_id}", data=CARDIO_FORM | PACKET | change)
        assert stored_line(app, desk.cardio_id).packet_updated_at > long_ago
        with app.app_context():
            db.session.get(ServiceLine, desk.cardio_id).packet_updated_at = long_ago
            db.session.commit()


def test_a_new_service_line_is_dated_when_created(app, client_for, desk):
    admin = client_for(desk.admin)
    data = CARDIO_FORM | PACKET | {"name": "Dermatology"}
    assert admin.post("/admin/service-lines/new", data=data).status_code == 302
    with app.app_context():
        line = db.session.scalar(select(ServiceLine).filter_by(name="Dermatology"))
        assert line.packet_updated_at is not None
        assert line.packet_treats == PACKET["packet_treats"]


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("packet_treats", "A" * 100_000, "Use at most 1,200 characters (this has 100,000)."),
        ("packet_how_to_submit", "Fax\x00us", "Remove the control or invisible formatting"),
        ("packet_after", "x" * 801, "Use at most 800 characters (this has 801)."),
        ("packet_contacts", "\u202eevil", "Remove the control or invisible formatting"),
    ],
)
def test_hostile_packet_text_is_refused_and_nothing_is_written(
    app, client_for, desk, field, value, message
):
    admin = client_for(desk.admin)
    audits = audit_count(app)
    # Every other field changed too: none of it may be saved.
    data = CARDIO_FORM | PACKET | {"name": "Renamed", field: value}
    response = admin.post(f"/admin/service-lines/{desk.cardio_id}", data=data)
    assert response.status_code == 422
    assert message in words(response.get_data(as_text=True))
    line = stored_line(app, desk.cardio_id)
    assert line.name == "Cardiac rehabilitation"
    assert (line.packet_treats, line.packet_after, line.packet_updated_at) == ("", "", None)
    assert audit_count(app) == audits


def test_packet_text_is_stored_stripped(app, client_for, desk):
    admin = client_for(desk.admin)
    data = CARDIO_FORM | {"packet_contacts": "  \r\n Call the nurse line.  \n\n"}
    assert admin.post(f"/admin/service-lines/{desk.cardio_id}", data=data).status_code == 302
    assert stored_line(app, desk.cardio_id).packet_contacts == "Call the nurse line."


# --- What happens after: the SLA targets in words --------------------------------------------


def test_what_happens_after_states_the_default_targets(app, client_for, desk):
    text = words(packet_page(client_for(desk.partner_a), desk.cardio_id))
    assert (
        "Urgent referrals: our intake team picks up the referral within 1 business hour, "
        "a clinician accepts, declines or redirects it within 4 business hours after that, "
        "we reach the patient with a next step within 1 business day of accepting the "
        "referral, and we report the outcome to you within 1 business day."
    ) in text
    assert (
        "Routine referrals: our intake team picks up the referral within 1 business day, "
        "a clinician accepts, declines or redirects it within 2 business days after that, "
        "we reach the patient with a next step within 3 business days of accepting the "
        "referral, and we report the outcome to you within 2 business days."
    ) in text
    assert (
        "Business hours are Monday to Friday, 9:00 AM to 5:00 PM (Eastern Time), except "
        "holidays. The clock stops while we wait for something we asked you for."
    ) in text


def test_changing_a_target_changes_the_packet(app, client_for, desk):
    admin = client_for(desk.admin)
    targets = {"section": "targets"}
    for stage, urgent, routine in (
        ("first_touch", "2", "8"),
        ("triage", "4", "16"),
        ("next_step", "8", "24"),
        ("partner_feedback", "1.5", "16"),
    ):
        targets[f"targets-{stage}__urgent"] = urgent
        targets[f"targets-{stage}__routine"] = routine
    assert admin.post("/admin/sla", data=targets).status_code == 302
    text = words(packet_page(client_for(desk.partner_a), desk.cardio_id))
    assert "Urgent referrals: our intake team picks up the referral within 2 business hours," in (
        text
    )
    assert "we report the outcome to you within 1 business hour and 30 minutes." in text
    # The page says what the one wording function says, sentence for sentence.
    with app.test_request_context():
        for sentence in what_happens_after():
            assert sentence in text


def test_a_longer_business_day_changes_what_a_day_means(app, client_for, desk):
    admin = client_for(desk.admin)
    hours = {"section": "hours", "hours-time_zone": "America/Chicago"}
    for day in range(7):
        if day < 5:
            hours |= {f"hours-opens_{day}": "08:00", f"hours-closes_{day}": "18:00"}
        elif day == 5:
            hours |= {f"hours-opens_{day}": "09:00", f"hours-closes_{day}": "12:30"}
        else:
            hours[f"hours-closed_{day}"] = "y"
    assert admin.post("/admin/sla", data=hours).status_code == 302
    text = words(packet_page(client_for(desk.partner_a), desk.cardio_id))
    # 8 hours are no longer a business day of 10 hours.
    assert "we report the outcome to you within 8 business hours." in text
    assert (
        "Business hours are Monday to Friday, 8:00 AM to 6:00 PM; Saturday, 9:00 AM to "
        "12:30 PM (Central Time), except holidays."
    ) in text


@pytest.mark.parametrize(
    ("minutes", "per_day", "expected"),
    [
        (60, 480, "1 business hour"),
        (240, 480, "4 business hours"),
        (480, 480, "1 business day"),
        (1440, 480, "3 business days"),
        (720, 480, "12 business hours"),
        (90, 480, "1 business hour and 30 minutes"),
        (61, 480, "1 business hour and 1 minute"),
        (15, 480, "15 business minutes"),
        (480, 0, "8 business hours"),
    ],
)
def test_business_time_in_words(app, minutes, per_day, expected):
    with app.test_request_context():
        assert business_time_in_words(minutes, per_day) == expected


# --- Who reads it ---------------------------------------------------------------------------


def test_partners_and_staff_read_the_packet(client_for, desk):
    for email in (desk.partner_a, desk.partner_b, desk.intake, desk.clinical, desk.admin):
        assert "What happens after" in packet_page(client_for(email), desk.cardio_id)


def test_anonymous_visitors_are_sent_to_sign_in(client, desk):
    response = client.get(f"/service-lines/{desk.cardio_id}/packet")
    assert response.status_code == 302
    assert "/sign-in" in response.headers["Location"]


def test_an_inactive_or_unknown_service_line_has_no_packet(app, client_for, desk):
    with app.app_context():
        db.session.get(ServiceLine, desk.sleep_id).active = False
        db.session.commit()
    partner = client_for(desk.partner_a)
    assert partner.get(f"/service-lines/{desk.sleep_id}/packet").status_code == 404
    assert partner.get("/service-lines/999999/packet").status_code == 404
    assert partner.get("/service-lines/99999999999999999999/packet").status_code == 404


def test_without_admin_text_the_packet_points_to_the_portal_and_the_practice_phone(
    app, client_for, desk
):
    text = words(packet_page(client_for(desk.partner_a), desk.sleep_id))
    address = app.config["PORTAL_BASE_URL"].rstrip("/") + "/referrals/new"
    assert f"Send the referral through the referral portal, {address}:" in text
    assert "Questions about a referral: call (202) 555-0100 during business hours." in text


def test_the_packet_page_costs_the_same_however_many_items_and_lines(
    app, client_for, desk, count_queries
):
    partner = client_for(desk.partner_a)
    packet_page(partner, desk.cardio_id)  # the process reads the SLA settings once
    with count_queries() as few:
        packet_page(partner, desk.cardio_id)
    with app.app_context():
        line = db.session.get(ServiceLine, desk.cardio_id)
        line.eligibility_criteria = "\n".join(f"Criterion {n}" for n in range(20))
        for n in range(5):
            db.session.add(ServiceLine(name=f"Extra line {n}"))
        db.session.commit()
    admin = client_for(desk.admin)
    items = "\n".join(f"Document {n}" for n in range(8))
    data = CARDIO_FORM | {"required_documents": items}
    assert admin.post(f"/admin/service-lines/{desk.cardio_id}", data=data).status_code == 302
    with count_queries() as many:
        assert "Document 7" in packet_page(partner, desk.cardio_id)
    assert many.count == few.count
    # The session and its user (2), the service line, its required items, the version of
    # the SLA settings (3), the jobs heartbeat (1; the test configuration caches neither).
    assert few.count <= 6, few.count


# --- Beside the submission form -----------------------------------------------------------


def test_the_form_links_every_active_packet_and_the_chosen_lines(app, client_for, desk):
    with app.app_context():
        db.session.add(ServiceLine(name="Retired line", active=False))
        db.session.commit()
    partner = client_for(desk.partner_a)
    form = partner.get("/referrals/new", follow_redirects=True).get_data(as_text=True)
    assert f'href="/service-lines/{desk.cardio_id}/packet"' in form
    assert f'href="/service-lines/{desk.sleep_id}/packet"' in form
    assert "Retired line" not in form
    fragment = partner.get(f"/referrals/new/requirements?service_line={desk.cardio_id}")
    html = fragment.get_data(as_text=True)
    assert "Referral packet (printable)" in html
    assert f'href="/service-lines/{desk.cardio_id}/packet"' in html
    assert "Cleared for exercise" in html and "Echocardiogram report" in html


def test_the_packet_links_cost_the_form_no_statement(app, client_for, desk, count_queries):
    partner = client_for(desk.partner_a)
    url = partner.get("/referrals/new").headers["Location"]
    with count_queries() as two_lines:
        assert partner.get(url).status_code == 200
    with app.app_context():
        db.session.add_all(ServiceLine(name=f"Extra line {n}") for n in range(6))
        db.session.commit()
    with count_queries() as eight_lines:
        page = partner.get(url).get_data(as_text=True)
    assert page.count('/packet"') == 8
    # The same statements as before packets existed: the lines are read once, as ever.
    assert two_lines.count == eight_lines.count == 6
