"""The status machine table itself: every status is reachable and every final one is final."""

from portal.models import FINAL_STATUSES, Role, Status
from portal.referrals.actions import ACTIONS as TRANSITIONS


def test_every_status_is_reached_by_some_action():
    reachable = {Status.SUBMITTED, Status.NEEDS_INFO}  # set at submission
    for transition in TRANSITIONS.values():
        for source in transition.sources:
            reachable.update(transition.targets_from(source))
    assert reachable == set(Status)


def test_nothing_leaves_a_final_status_except_staff_notes():
    for transition in TRANSITIONS.values():
        for source in transition.sources & FINAL_STATUSES:
            assert transition.action in {"add_note", "share_follow_up"}
            assert transition.targets_from(source) == {source}


def test_only_partners_withdraw_and_only_clinical_staff_triage():
    assert TRANSITIONS["withdraw"].roles == {Role.PARTNER}
    for action in ("accept", "decline", "redirect"):
        assert TRANSITIONS[action].roles == {Role.CLINICAL}
    assert all(Role.ADMIN not in t.roles for t in TRANSITIONS.values())


def test_only_system_transitions_have_no_roles():
    for transition in TRANSITIONS.values():
        assert bool(transition.roles) != transition.system
