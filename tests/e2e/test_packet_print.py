"""A referring office opens a service line's referral packet in a real browser, prints it
on one US Letter page without the portal around it, and the page passes axe."""

from __future__ import annotations

import re

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import expect

from portal.clock import utcnow
from portal.extensions import db
from portal.models import ItemKind, RequiredItem, ServiceLine

pytestmark = pytest.mark.e2e

# What an admin would write for a real service line: a little more than the demo's.
LONG_ISH_PACKET = {
    "description": "Supervised virtual cardiac rehab after a cardiac event.",
    "eligibility_criteria": "\n".join(
        [
            "Myocardial infarction, CABG, PCI or valve surgery in the last 12 months",
            "Stable heart failure, NYHA class I to III, on optimal therapy",
            "Stable angina without symptoms at rest",
            "Cleared for exercise by a cardiologist",
            "Able to join a video visit (we can lend a tablet)",
        ]
    ),
    "packet_treats": "\n".join(
        [
            "Twelve weeks of supervised exercise and education by video, with a home blood "
            "pressure cuff and a heart rate monitor sent to the patient before the first "
            "session.",
            "- After a heart attack, bypass surgery, a stent or valve surgery",
            "- Stable heart failure, including after a hospital stay",
            "- Stable angina",
            "- Risk factor coaching: smoking, diet, weight, stress and sleep",
        ]
    ),
    "packet_how_to_submit": "Send the referral through this portal and attach the echo report "
    "and the exercise clearance note.\nNo portal access yet? Fax the referral with the same "
    "documents to (202) 555-0199; we enter it for you the same business day.",
    "packet_after": "Sessions run three times a week for twelve weeks. We send you a progress "
    "summary at weeks 6 and 12, and a discharge summary with the exercise prescription.",
    "packet_contacts": "Cardiac rehab nurse line: (202) 555-0112, weekdays 8 AM to 4 PM\n"
    "Program lead: Dana Whitfield, RN, dana.whitfield@northwind.example\n"
    "Fax: (202) 555-0199",
}
ITEMS = [
    ("Most recent echocardiogram report", ItemKind.DOCUMENT, "Within the last 6 months."),
    ("Exercise clearance note", ItemKind.DOCUMENT, "Signed by the cardiologist."),
    ("Current medication list", ItemKind.ANSWER, "With doses, including beta blockers."),
    ("Event date and procedure", ItemKind.ANSWER, ""),
]


def write_packet(desk, **fields) -> None:
    line = db.session.get(ServiceLine, desk.cardio_id)
    for name, value in (LONG_ISH_PACKET | fields).items():
        setattr(line, name, value)
    line.packet_updated_at = utcnow()
    line.all_required_items = [
        RequiredItem(label=label, kind=kind, help_text=help_text, position=position)
        for position, (label, kind, help_text) in enumerate(ITEMS)
    ]
    db.session.commit()


def printed_pages(page) -> int:
    """How many pages the browser prints the page on, on US Letter paper."""
    pdf = page.pdf(format="Letter")
    return len(re.findall(rb"/Type\s*/Page(?!s)", pdf))


def test_a_partner_prints_a_packet_on_one_letter_page(app, desk, live_server, signed_in_page):
    with app.app_context():
        write_packet(desk)
    page = signed_in_page(desk.partner_a)
    page.goto(f"{live_server}/service-lines/{desk.cardio_id}/packet")
    expect(page.get_by_role("heading", name="Cardiac rehabilitation")).to_be_visible()
    expect(page.get_by_text("Urgent referrals: our intake team picks up")).to_be_visible()

    assert printed_pages(page) == 1
    # On paper, the portal's navigation and the page's buttons are gone; the packet is not.
    page.emulate_media(media="print")
    expect(page.get_by_role("navigation", name="Main")).to_be_hidden()
    expect(page.get_by_role("button", name="Print")).to_be_hidden()
    expect(page.get_by_text("Cardiac rehab nurse line")).to_be_visible()
    expect(page.get_by_text("Last updated")).to_be_visible()
    page.emulate_media(media="screen")

    # "Print" opens the browser's print dialog (stubbed: headless has none to show).
    page.evaluate("window.print = () => { window.printed = true; }")
    page.get_by_role("button", name="Print").click()
    assert page.evaluate("window.printed") is True
    assert page.js_errors == []


def test_page_count_sees_a_packet_too_long_for_one_page(app, desk, live_server, signed_in_page):
    """The count above can fail: an overlong packet prints on more than one page."""
    with app.app_context():
        write_packet(
            desk,
            eligibility_criteria="\n".join(f"Criterion number {n}" for n in range(60)),
            packet_treats="\n".join(f"- Condition number {n}" for n in range(60)),
        )
    page = signed_in_page(desk.partner_a)
    page.goto(f"{live_server}/service-lines/{desk.cardio_id}/packet")
    assert printed_pages(page) > 1


def test_the_packet_page_passes_axe(app, desk, live_server, signed_in_page):
    with app.app_context():
        write_packet(desk)
    page = signed_in_page(desk.partner_a)
    page.goto(f"{live_server}/service-lines/{desk.cardio_id}/packet")
    results = Axe().run(page)
    assert results.violations_count == 0, results.generate_report()
