"""A partner user sees only its own partner's referrals, by every route."""

from __future__ import annotations

import pytest

from portal.models import Status
from tests.fixtures.desk import make_referral


def referral_routes(app) -> list[tuple[str, str]]:
    """Every (method, rule) of the app that takes a referral reference."""
    routes = []
    for rule in app.url_map.iter_rules():
        if "reference" in rule.arguments:
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                routes.append((method, rule.rule))
    return routes


def fill(rule: str, reference: str) -> str:
    return (
        rule.replace("<ref:reference>", reference)
        .replace("<id:document_id>", "1")
        .replace("<action>", "withdraw")
    )


def test_the_route_list_covers_every_referral_page(app):
    rules = {rule for _method, rule in referral_routes(app)}
    assert {
        "/referrals/<ref:reference>",
        "/referrals/<ref:reference>/timeline",
        "/referrals/<ref:reference>/submitted",
        "/referrals/<ref:reference>/actions/<action>",
        "/referrals/<ref:reference>/documents/<id:document_id>",
    } <= rules


def test_another_partners_referral_is_not_found_by_any_route(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, Status.ACCEPTED, partner_email=desk.partner_b)
    outsider = client_for(desk.partner_a)
    routes = referral_routes(app)
    assert routes
    for method, rule in routes:
        response = outsider.open(fill(rule, reference), method=method, data={"version": 1})
        assert response.status_code == 404, (method, rule, response.status_code)


def test_the_owning_partner_reaches_the_same_routes(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk, partner_email=desk.partner_b)
    owner = client_for(desk.partner_b)
    assert owner.get(f"/referrals/{reference}").status_code == 200
    assert owner.get(f"/referrals/{reference}/timeline").status_code == 200
    assert owner.get(f"/referrals/{reference}/submitted").status_code == 200


def test_a_colleague_at_the_same_partner_sees_the_referral(app, client_for, desk):
    with app.app_context():
        reference = make_referral(desk)  # sent by partner_a
    assert client_for(desk.partner_a2).get(f"/referrals/{reference}").status_code == 200


def test_partner_lists_show_only_their_own_referrals(app, client_for, desk):
    with app.app_context():
        mine = make_referral(desk)
        theirs = make_referral(desk, partner_email=desk.partner_b)
    html = client_for(desk.partner_a).get("/referrals/").get_data(as_text=True)
    assert mine in html and theirs not in html


def test_an_unknown_reference_looks_the_same_as_someone_elses(app, client_for, desk):
    client = client_for(desk.partner_a)
    assert client.get("/referrals/R-0000-0000").status_code == 404


@pytest.mark.parametrize("path", ["/queue", "/admin/partners", "/admin/users", "/admin/audit"])
def test_partner_users_cannot_reach_staff_pages(client_for, desk, path):
    assert client_for(desk.partner_a).get(path).status_code == 404
