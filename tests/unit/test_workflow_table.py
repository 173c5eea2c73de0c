"""The status machine table itself: every status is reachable and every final one is final."""

from portal.models import FINAL_STATUSES, Role, Status
from portal.referrals.workflow import TRANSITIONS


def test_every_status_is_reached_by_some_action():
    reachable = {Status.SUBMITTED, Status.NEEDS_INFO}  # set at submission
    for transition in TRANSITIONS.values():
        reachable.update(transition.moves.values())
    assert reachable == set(Status)


def test_nothing_leaves_a_final_status_except_staff_notes():
    for transition in TRANSITIONS.values():
        for source, target in transition.moves.items():
            if source in FINAL_STATUSES:
                assert transition.action == "add_note" and target == source


def test_only_partners_withdraw_and_only_clinical_staff_triage():
    assert TRANSITIONS["withdraw"].roles == {Role.PARTNER}
    for action in ("accept", "decline", "redirect"):
        assert TRANSITIONS[action].roles == {Role.CLINICAL}
    assert all(Role.ADMIN not in t.roles for t in TRANSITIONS.values())
