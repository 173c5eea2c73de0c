"""The partner's referral list: what each row shows and which rows are marked as news."""

from __future__ import annotations

import re
import threading
from datetime import timedelta
from types import SimpleNamespace

import pytest
from sqlalchemy import delete, select, update

from portal.clock import utcnow
from portal.extensions import db
from portal.models import Referral, ReferralView, Status, Urgency, User
from portal.referrals import routes, services
from portal.referrals.unread import UNREAD_WINDOW, mark_seen, unread_referral_count
from tests.fixtures.desk import make_referral, user


def rows_of(html: str) -> dict[str, str]:
    """Each row of the list's table by the reference it links to."""
    body = html.split("<tbody>", 1)[1].split("</tbody>", 1)[0]
    return {
        re.search(r">(R-[0-9A-Z-]+)</a>", row).group(1): " ".join(row.split())
        for row in re.findall(r"<tr>(.*?)</tr>", body, re.S)
    }


def test_each_row_shows_the_referral_at_a_glance(app, client_for, desk):
    with app.app_context():
        waiting = make_referral(desk, Status.NEEDS_INFO, urgency=Urgency.URGENT)
        done = make_referral(desk, Status.COMPLETED)
    rows = rows_of(client_for(desk.partner_a).get("/referrals/").get_data(as_text=True))
    # Moved on by intake: news to the office.
    assert (
        f'<td class="card-title"><a href="/referrals/{waiting}">{waiting}</a>'
        ' <span class="badge unread">New update</span></td>'
    ) in rows[waiting]
    assert '<td data-label="Service line">Cardiac rehabilitation</td>' in rows[waiting]
    assert '<td data-label="Urgency"><span class="badge urgent">Urgent</span></td>' in rows[waiting]
    assert (
        '<span class="badge status-needs_info">Needs information</span>'
        ' <span class="badge attention">Action needed</span></td>'
    ) in rows[waiting]
    assert '<td data-label="Outcome">Pending</td>' in rows[waiting]
    assert '<td data-label="Urgency">Routine</td>' in rows[done]
    assert 'class="badge status-completed">Completed</span></td>' in rows[done]
    assert '<td data-label="Outcome">Started care</td>' in rows[done]
    assert '<td data-label="Last update">just now</td>' in rows[done]


def test_rows_are_marked_exactly_when_they_have_news_for_this_user(app, client_for, desk):
    now = utcnow()
    with app.app_context():
        db.session.execute(
            update(User)
            .where(User.email.in_([desk.partner_a, desk.partner_a2]))
            .values(created_at=now - timedelta(days=400))
        )
        references = {
            name: make_referral(desk)
            for name in ("never_opened", "seen_since", "seen_exactly", "updated_since", "too_old")
        }
        updated_at = {name: now - timedelta(days=2) for name in references}
        updated_at["too_old"] = now - UNREAD_WINDOW - timedelta(days=1)
        seen_at = {
            "seen_since": now - timedelta(days=1),
            "seen_exactly": now - timedelta(days=2),
            "updated_since": now - timedelta(days=3),
        }
        me = user(desk.partner_a).id
        for name, reference in references.items():
            referral_id = db.session.execute(
                update(Referral)
                .where(Referral.reference == reference)
                .values(updated_at=updated_at[name])
                .returning(Referral.id)
            ).scalar_one()
            # The submitter saw what it sent: start each referral from what the test says.
            db.session.execute(delete(ReferralView).where(ReferralView.referral_id == referral_id))
            if name in seen_at:
                db.session.add(
                    ReferralView(user_id=me, referral_id=referral_id, seen_at=seen_at[name])
                )
        db.session.commit()
        theirs = make_referral(desk, partner_email=desk.partner_b)

    html = client_for(desk.partner_a).get("/referrals/").get_data(as_text=True)
    rows = rows_of(html)
    assert theirs not in rows and set(rows) == set(references.values())
    marked = {name for name, reference in references.items() if "New update" in rows[reference]}
    assert marked == {"never_opened", "updated_since"}
    assert 'id="unread-badge">2<' in html  # the navigation's count agrees with the marks

    # A colleague has opened none of them: all but the one outside the window is news.
    colleague = rows_of(client_for(desk.partner_a2).get("/referrals/").get_data(as_text=True))
    marked = {
        name for name, reference in references.items() if "New update" in colleague[reference]
    }
    assert marked == set(references) - {"too_old"}


def test_an_update_committed_while_the_page_is_built_stays_news(app, client_for, desk, monkeypatch):
    with app.app_context():
        reference = make_referral(desk, Status.IN_REVIEW)  # intake took it into review
        assert unread_referral_count(user(desk.partner_a)) == 1
    office = client_for(desk.partner_a)
    real_audit = routes.record_audit
    accepted = []

    def clinical_accepts(*args, **kwargs):
        """Clinical accepts it in their own request after the office's page has read the
        referral and its timeline, and before it records the view."""
        if not accepted:
            accepted.append(True)

            def accept() -> None:
                with app.app_context():
                    referral = db.session.scalar(
                        select(Referral).where(Referral.reference == reference)
                    )
                    services.accept(
                        referral, user(desk.clinical), expected_version=None, provider="Dr. Park"
                    )
                    db.session.commit()

            elsewhere = threading.Thread(target=accept)
            elsewhere.start()
            elsewhere.join(10)
        return real_audit(*args, **kwargs)

    monkeypatch.setattr(routes, "record_audit", clinical_accepts)
    page = office.get(f"/referrals/{reference}").get_data(as_text=True)
    monkeypatch.setattr(routes, "record_audit", real_audit)
    assert accepted and 'id="current-status">Accepted<' not in page  # not on that page
    with app.app_context():
        assert unread_referral_count(user(desk.partner_a)) == 1
    assert "New update" in rows_of(office.get("/referrals/").get_data(as_text=True))[reference]
    # Once a page shows it, it is seen.
    assert 'id="current-status">Accepted<' in office.get(f"/referrals/{reference}").get_data(
        as_text=True
    )
    with app.app_context():
        assert unread_referral_count(user(desk.partner_a)) == 0


@pytest.mark.parametrize("order", ["older view first", "newer view first"])
def test_two_views_of_one_referral_keep_the_later_state_seen(app, desk, order):
    with app.app_context():
        reference = make_referral(desk, Status.IN_REVIEW)
        referral = db.session.scalar(select(Referral).filter_by(reference=reference))
        office = user(desk.partner_a)
        db.session.execute(delete(ReferralView).where(ReferralView.referral_id == referral.id))
        db.session.commit()
        newer = referral.updated_at
        older = newer - timedelta(seconds=5)  # a tab that read it before its last update
        views = [older, newer] if order == "older view first" else [newer, older]
        for shown in views:  # each request as it read the referral
            mark_seen(office, SimpleNamespace(id=referral.id, updated_at=shown))
            db.session.commit()
        seen = db.session.scalar(
            select(ReferralView.seen_at).where(ReferralView.referral_id == referral.id)
        )
        assert seen == newer
        assert unread_referral_count(office) == 0
