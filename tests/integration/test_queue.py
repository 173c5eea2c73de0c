"""The staff queue: order, filters, search, and a query count that does not grow."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select

from portal.clock import frozen_at, utcnow
from portal.extensions import db
from portal.models import Referral, Status, Urgency
from portal.sla.tasks import sweep
from tests.fixtures.desk import make_referral


def test_queue_is_urgent_first_then_oldest_first(app, client_for, desk):
    now = utcnow()
    with app.app_context():
        with frozen_at(now - timedelta(hours=5)):
            oldest_routine = make_referral(desk)
        with frozen_at(now - timedelta(hours=3)):
            older_urgent = make_referral(desk, urgency=Urgency.URGENT)
        with frozen_at(now - timedelta(hours=1)):
            newest_urgent = make_referral(desk, urgency=Urgency.URGENT)
            newest_routine = make_referral(desk)
    html = client_for(desk.intake).get("/queue").get_data(as_text=True)
    positions = [
        html.index(r) for r in (older_urgent, newest_urgent, oldest_routine, newest_routine)
    ]
    assert positions == sorted(positions)


def test_queue_shows_open_referrals_by_default(app, client_for, desk):
    with app.app_context():
        open_one = make_referral(desk, Status.ACCEPTED)
        closed = make_referral(desk, Status.DECLINED)
    client = client_for(desk.intake)
    html = client.get("/queue").get_data(as_text=True)
    assert open_one in html and closed not in html
    assert closed in client.get("/queue?status=all").get_data(as_text=True)


def test_queue_filters_by_status_urgency_service_line_and_partner(app, client_for, desk):
    with app.app_context():
        accepted = make_referral(desk, Status.ACCEPTED)
        urgent = make_referral(desk, urgency=Urgency.URGENT)
        cardio = make_referral(desk, service_line_id=desk.cardio_id)
        from_beta = make_referral(desk, partner_email=desk.partner_b)
    client = client_for(desk.clinical)

    def shown(query):
        html = client.get(f"/queue?{query}").get_data(as_text=True)
        return {r for r in (accepted, urgent, cardio, from_beta) if r in html}

    assert shown("status=accepted") == {accepted}
    assert shown("urgency=urgent") == {urgent}
    assert shown(f"service_line={desk.cardio_id}") == {cardio}
    assert shown(f"partner={desk.partner_b_id}") == {from_beta}


def test_queue_finds_a_referral_by_reference_however_it_is_typed(app, client_for, desk):
    with app.app_context():
        wanted = make_referral(desk, Status.COMPLETED)
        other = make_referral(desk)
    typed = wanted.lower().replace("-", " ")
    html = client_for(desk.intake).get(f"/queue?q={typed}").get_data(as_text=True)
    assert wanted in html and other not in html


def test_htmx_filter_requests_get_only_the_results_fragment(app, client_for, desk):
    with app.app_context():
        make_referral(desk)
    response = client_for(desk.intake).get(
        "/queue?urgency=routine", headers={"HX-Request": "true", "HX-Target": "queue-results"}
    )
    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<div id="queue-results"') and "<html" not in html


def mark_as_possible_duplicate(reference: str, of: str) -> None:
    earlier = db.session.scalar(select(Referral.id).where(Referral.reference == of))
    later = db.session.scalar(select(Referral).where(Referral.reference == reference))
    later.possible_duplicate_of_id = earlier
    db.session.commit()


def test_queue_query_count_does_not_grow_with_the_rows(app, client_for, desk, count_queries):
    client = client_for(desk.intake)
    with app.app_context():
        first = make_referral(desk)
        mark_as_possible_duplicate(make_referral(desk), of=first)
    with count_queries() as few:
        assert client.get("/queue").status_code == 200
    with app.app_context():
        for index in range(12):
            reference = make_referral(
                desk,
                Status.ACCEPTED if index % 2 else Status.SUBMITTED,
                partner_email=desk.partner_b if index % 3 else desk.partner_a,
                service_line_id=desk.cardio_id if index % 4 else desk.sleep_id,
            )
            if index % 3 == 0:  # the "possible duplicate" marks: no query per row either
                mark_as_possible_duplicate(reference, of=first)
    with count_queries() as many:
        html = client.get("/queue").get_data(as_text=True)
    assert html.count("Possible duplicate of") == 5
    assert many.count == few.count


def test_partner_list_query_count_does_not_grow_with_the_rows(app, client_for, desk, count_queries):
    client = client_for(desk.partner_a)
    with app.app_context():
        make_referral(desk)
    with count_queries() as few:
        client.get("/referrals/")
    with app.app_context():
        for index in range(8):
            make_referral(desk, service_line_id=desk.cardio_id if index % 2 else desk.sleep_id)
    with count_queries() as many:
        client.get("/referrals/")
    assert many.count == few.count


def test_queue_pages_through_long_lists(app, client_for, desk):
    app.config["QUEUE_PAGE_SIZE"] = 2
    with app.app_context():
        references = [make_referral(desk) for _ in range(3)]
    client = client_for(desk.intake)
    first = client.get("/queue").get_data(as_text=True)
    second = client.get("/queue?page=2").get_data(as_text=True)
    assert [r in first for r in references] == [True, True, False]
    assert f'<a href="/referrals/{references[0]}">{references[0]}</a>' in first
    assert references[2] in second and "Next page" in first


def test_queue_clocks_count_business_time_by_the_hours_saved_last(app, client_for, desk):
    # The queue keeps its calendar between pages: a holiday saved since must still count.
    monday_10 = datetime(2026, 11, 23, 10, tzinfo=ZoneInfo("America/New_York"))
    with app.app_context(), frozen_at(monday_10):
        reference = make_referral(desk)  # routine first touch: one business day
    intake = client_for(desk.intake)

    def clock_text() -> str:
        with frozen_at(monday_10 + timedelta(hours=1)):
            html = intake.get("/queue").get_data(as_text=True)
        row = html[html.index(reference) :]
        return row[row.index('class="clock') : row.index("</span>", row.index('class="clock'))]

    assert "First touch: 7 h 0 min left" in clock_text()
    assert 'title="First touch, owner Intake, due Tue, Nov 24, 2026, 10:00' in clock_text()
    holiday = {"section": "holiday", "holiday-day": "2026-11-24", "holiday-name": "Closed"}
    with frozen_at(monday_10 + timedelta(minutes=30)):  # declared ahead of the day
        assert client_for(desk.admin).post("/admin/sla", data=holiday).status_code == 302
    assert "First touch: 6 h 0 min left" in clock_text()
    # The next sweep moves the clock's due time past the closed day (sla/retiming.py).
    with app.app_context(), frozen_at(monday_10 + timedelta(minutes=45)):
        sweep()
    assert "First touch: 7 h 0 min left" in clock_text()
    assert "due Wed, Nov 25, 2026, 10:00" in clock_text()
