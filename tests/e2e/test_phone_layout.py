"""Every page fits a 360 px phone without sideways scrolling, and the patient's pages,
which work without JavaScript, have controls a thumb can hit."""

from __future__ import annotations

import re
from datetime import timedelta

import pyotp
import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from portal.accounts.services import invite_user, request_password_reset
from portal.clock import frozen_at, utcnow
from portal.extensions import db
from portal.models import (
    AppointmentMode,
    ContactMethod,
    MessageChannel,
    MessageStatus,
    OutboxMessage,
    OutreachResult,
    Partner,
    Referral,
    Role,
    Status,
    Urgency,
)
from portal.patients.services import Slot, send_next_step_link
from portal.referrals import services
from portal.referrals.drafts import DraftContent, save_draft
from portal.sla.tasks import sweep
from tests.fixtures.desk import make_referral, user

pytestmark = pytest.mark.e2e

WIDTH = 360
PHONE = {"viewport": {"width": WIDTH, "height": 740}, "is_mobile": True, "has_touch": True}
TAP = 44  # CSS px: the smallest target a thumb reliably hits (WCAG 2.5.5)
LONG_PARTNER_NAME = "Alpha Primary Care and Family Medicine Associates of Northern Virginia"

# The page's width, and the elements reaching furthest past the phone's edge: first
# those sticking out of their parent (the culprits), deepest first, then the rest.
MEASURE = """(limit) => {
  const depth = (e) => { let d = 0; for (; e; e = e.parentElement) d++; return d; };
  const name = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '')
    + Array.from(e.classList, (c) => '.' + c).join('')
    + ' "' + e.textContent.trim().replace(/\\s+/g, ' ').slice(0, 40) + '"';
  const wide = [];
  for (const e of document.body.querySelectorAll('*')) {
    const right = e.getBoundingClientRect().right + window.scrollX;
    if (right <= limit + 0.5) continue;
    const parent = e.parentElement.getBoundingClientRect().right + window.scrollX;
    wide.push({right, culprit: right > parent + 0.5 ? 1 : 0, depth: depth(e), e});
  }
  wide.sort((a, b) => b.culprit - a.culprit || b.depth - a.depth || b.right - a.right);
  return {
    width: document.documentElement.scrollWidth,
    widest: wide.slice(0, 3).map((w) => name(w.e) + ' reaches ' + Math.round(w.right) + ' px'),
  };
}"""


def overflow(page) -> str | None:
    """Why the page scrolls sideways on the phone, or None when it fits."""
    found = page.evaluate(MEASURE, WIDTH)
    if found["width"] <= WIDTH:
        return None
    return f"{page.url} is {found['width']} px wide: {'; '.join(found['widest'])}"


def overflowing_pages(page, live_server, paths) -> list[str]:
    """Open each path (a path, or a path and the status it must answer) and say which
    scroll sideways."""
    problems = []
    for entry in paths:
        path, status = (entry, 200) if isinstance(entry, str) else entry
        response = page.goto(live_server + path)
        assert response.status == status, f"{path} answered {response.status}, not {status}"
        if problem := overflow(page):
            problems.append(problem)
    return problems


def lengthen_partner_name(desk) -> None:
    """Long names are what overflow: give partner A one (the header and lists show it)."""
    db.session.get(Partner, desk.partner_a_id).name = LONG_PARTNER_NAME
    db.session.commit()


def referral_for(reference: str) -> Referral:
    return db.session.scalar(select(Referral).where(Referral.reference == reference))


def send_patient_link(desk, reference: str, slots: int = 2) -> None:
    start = (utcnow() + timedelta(days=3)).replace(hour=14, minute=30, second=0, microsecond=0)
    send_next_step_link(
        referral_for(reference),
        user(desk.intake),
        expected_version=None,
        via=ContactMethod.EMAIL,
        slots=[Slot(start + timedelta(days=day), AppointmentMode.VIDEO) for day in range(slots)],
    )
    db.session.commit()


def newest_link_in_outbox(pattern: str) -> str:
    """The first link matching `pattern` in the newest message that has one."""
    for body in db.session.scalars(select(OutboxMessage.body).order_by(OutboxMessage.id.desc())):
        if match := re.search(pattern, body):
            return match.group(0)
    raise AssertionError(f"No message links to {pattern}")


def test_signed_out_pages_fit_a_phone(app, desk, browser, live_server):
    with app.app_context():
        invitation = invite_user(
            email="newcomer@alpha.example",
            full_name="Newcomer",
            role=Role.PARTNER,
            partner=db.session.get(Partner, desk.partner_a_id),
            invited_by=user(desk.admin),
        )
        db.session.commit()
        request_password_reset(desk.partner_b, "127.0.0.1")
        db.session.commit()
        reset_link = newest_link_in_outbox(r"http://\S+/password/reset\?token=\S+")

    context = browser.new_context(**PHONE)
    page = context.new_page()
    problems = overflowing_pages(
        page,
        live_server,
        [
            "/sign-in",
            "/password/forgot",
            reset_link.removeprefix(live_server),
            f"/invitations/{invitation.token}",
            ("/invitations/not-a-real-invitation", 410),
            ("/password/reset?token=not-a-real-token", 410),
            ("/no-such-page", 404),
        ],
    )
    page.goto(f"{live_server}/password/forgot")
    page.get_by_label("Email address").fill(desk.partner_a2)
    page.get_by_role("button", name="Send the link").click()
    expect(page.get_by_role("heading", name="Check your email")).to_be_visible()
    problems.append(overflow(page))
    # Staff then give their code: the second step of signing in (no code is spent here).
    page.goto(f"{live_server}/sign-in")
    page.get_by_label("Email address").fill(desk.clinical)
    page.get_by_label("Password").fill("correct horse battery")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Enter your code")).to_be_visible()
    problems.append(overflow(page))
    context.close()
    assert [problem for problem in problems if problem] == []


def test_partner_pages_fit_a_phone(app, desk, live_server, signed_in_page):
    with app.app_context():
        lengthen_partner_name(desk)
        needs_info = make_referral(desk, Status.NEEDS_INFO)
        urgent = make_referral(desk, urgency=Urgency.URGENT)
        make_referral(desk, Status.SCHEDULED)
        make_referral(desk, Status.COMPLETED)
        values = {
            "patient_first_name": "Zephyrine",
            "patient_last_name": "Quillfeather-Montgomery",
            "service_line": str(desk.cardio_id),
        }
        draft = save_draft(None, DraftContent(values, [], {}), user(desk.partner_a))
        db.session.commit()
        draft_id = draft.id

    page = signed_in_page(desk.partner_a, **PHONE)
    problems = overflowing_pages(
        page,
        live_server,
        [
            "/referrals/",
            "/referrals/new",
            "/referrals/drafts",
            f"/referrals/drafts/{draft_id}",
            f"/referrals/drafts/{draft_id}/delete",
            f"/referrals/{needs_info}",
            f"/referrals/{urgent}",
            f"/referrals/{urgent}/submitted",
            "/referrals/statuses",
            "/dashboard",
            "/exports/dictionary",
            "/account",
            "/account/password",
            ("/referrals/R-0000-0000", 404),
        ],
    )
    # Turning on the second factor: the QR code, then the recovery codes.
    page.goto(f"{live_server}/account")
    page.get_by_role("link", name="Turn on the second factor").click()
    problems.append(overflow(page))
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    page.get_by_role("textbox", name="Code").fill(pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Turn on the second factor").click()
    expect(page.get_by_role("heading", name="Save your recovery codes")).to_be_visible()
    problems.append(overflow(page))
    problems += overflowing_pages(page, live_server, ["/account"])
    assert [problem for problem in problems if problem] == []


def test_staff_pages_fit_a_phone(app, desk, live_server, signed_in_page):
    with app.app_context():
        lengthen_partner_name(desk)
        with frozen_at(utcnow() - timedelta(days=7)):
            breached = make_referral(desk, service_line_id=desk.cardio_id)
        sweep()  # its first-touch target was missed: the page asks staff why
        db.session.commit()
        make_referral(desk, urgency=Urgency.URGENT)
        duplicate = make_referral(desk)
        marked = referral_for(duplicate)
        marked.possible_duplicate_of_id = referral_for(breached).id
        marked.patient_locked_out_at = utcnow()
        accepted = make_referral(desk, Status.ACCEPTED)
        services.log_outreach(
            referral_for(accepted),
            user(desk.intake),
            expected_version=None,
            channel=ContactMethod.PHONE,
            result=OutreachResult.NO_ANSWER,
        )
        send_patient_link(desk, accepted)
        db.session.add(
            OutboxMessage(
                channel=MessageChannel.EMAIL,
                recipient="referrals-and-scheduling-team@a-very-long-domain-name.example.org",
                subject="Your referral R-ABCD-EFGH has an update",
                body="b",
                status=MessageStatus.DEAD,
                attempts=8,
                last_error="SMTP: 550 5.1.1 <referrals-and-scheduling-team@a-very-long-"
                "domain-name.example.org>: Recipient address rejected: User unknown",
            )
        )
        db.session.commit()
        intake_id = user(desk.intake).id
        partner_user_id = user(desk.partner_a).id

    intake = signed_in_page(desk.intake, **PHONE)
    problems = overflowing_pages(
        intake,
        live_server,
        [
            "/queue",
            "/queue?status=all",
            f"/referrals/{breached}",
            f"/referrals/{accepted}",
            f"/referrals/{duplicate}",
            "/referrals/new",
            "/referrals/statuses",
            "/dev/outbox",
            "/scorecard",
            "/exports/dictionary",
            "/account",
            ("/referrals/R-0000-0000", 404),
            ("/admin/users", 403),
        ],
    )
    admin = signed_in_page(desk.admin, **PHONE)
    problems += overflowing_pages(
        admin,
        live_server,
        [
            "/admin/users",
            f"/admin/users/{intake_id}",
            f"/admin/users/{partner_user_id}",
            "/admin/partners",
            "/admin/partners/new",
            f"/admin/partners/{desk.partner_a_id}",
            "/admin/service-lines",
            "/admin/service-lines/new",
            f"/admin/service-lines/{desk.cardio_id}",
            "/admin/sla",
            "/admin/audit",
            "/admin/outbox",
            "/queue",
            "/scorecard",
        ],
    )
    # An invitation's one-time link is shown on the page it was sent from.
    admin.goto(f"{live_server}/admin/users")
    admin.get_by_label("Full name").fill("Newcomer")
    admin.get_by_label("Email").fill("newcomer@desk.example")
    admin.get_by_role("button", name="Send invitation").click()
    expect(admin.get_by_label("Invitation link")).to_be_visible()
    problems.append(overflow(admin))
    assert [problem for problem in problems if problem] == []


def undersized_controls(page) -> list[str]:
    """Every visible control smaller than a thumb, and date boxes not sized for their
    digits. Measured by the browser's layout: Playwright's own evaluate still works in a
    context with JavaScript off, where the page's scripts would not run."""
    problems = []
    controls = page.locator(
        "input:not([type=hidden]), select, textarea, button, a.button, a[href^='tel:'], header a"
    )
    for index in range(controls.count()):
        control = controls.nth(index)
        if not control.is_visible():
            continue
        box = control.bounding_box()
        if box["width"] < TAP or box["height"] < TAP:
            name = control.get_attribute("id") or control.get_attribute("href")
            name = name or control.inner_text()
            problems.append(f"{page.url}: {name} is {box['width']:.0f} x {box['height']:.0f} px")
    for box_class, digits in (("date-2", 2), ("date-4", 4)):
        for date_box in page.locator(f".date-input input.{box_class}").all():
            date_box.fill("8" * digits)
            width = date_box.bounding_box()["width"]
            if date_box.evaluate("box => box.scrollWidth > box.clientWidth"):
                problems.append(f"{page.url}: {digits} digits do not fit the {box_class} box")
            if width > WIDTH / 2:
                problems.append(f"{page.url}: the {box_class} box is {width:.0f} px wide")
            date_box.fill("")
    if problem := overflow(page):
        problems.append(problem)
    return problems


def test_patient_pages_fit_a_phone_with_thumb_sized_controls_and_no_javascript(
    app, desk, browser, live_server
):
    with app.app_context():
        reference = make_referral(desk, Status.ACCEPTED)
        send_patient_link(desk, reference)
        url = newest_link_in_outbox(r"http://\S+/p/\S+")

    context = browser.new_context(**PHONE, java_script_enabled=False)
    page = context.new_page()
    page.goto(url)
    expect(page.get_by_role("heading", name="Confirm it is you")).to_be_visible()
    problems = undersized_controls(page)
    page.get_by_label("Day").fill("15")  # a wrong date of birth: the page with its error
    page.get_by_label("Month").fill("3")
    page.get_by_label("Year").fill("1961")
    page.get_by_role("button", name="Continue").click()
    expect(page.locator(".error-summary")).to_be_visible()
    problems += undersized_controls(page)
    page.get_by_label("Day").fill("14")
    page.get_by_label("Month").fill("3")
    page.get_by_label("Year").fill("1961")
    page.get_by_role("button", name="Continue").click()

    expect(page.get_by_role("heading", name="Choose your next step")).to_be_visible()
    problems += undersized_controls(page)
    page.get_by_role("button", name="Send my answer").click()  # nothing chosen: errors
    expect(page.locator(".error-summary")).to_be_visible()
    problems += undersized_controls(page)
    page.get_by_role("radio").first.check()
    page.get_by_label("Text message").check()
    page.get_by_role("button", name="Send my answer").click()

    expect(page.get_by_role("heading", name="You are booked")).to_be_visible()
    problems += undersized_controls(page)
    response = page.goto(f"{live_server}/p/not-a-real-link")
    assert response.status == 404
    expect(page.get_by_role("heading", name="This link does not work")).to_be_visible()
    problems += undersized_controls(page)
    response = page.goto(f"{live_server}/p/a/mangled/link")  # no patient route: the error page
    assert response.status == 404
    problems += undersized_controls(page)
    context.close()
    assert problems == []
