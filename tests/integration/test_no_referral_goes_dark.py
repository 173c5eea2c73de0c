"""Property: whatever allowed sequence of actions happens, no open referral goes dark.

Hypothesis drives random sequences of the workflow's allowed actions (with time
passing between them, sweeps and deliveries in between) and checks the whole
database after each step.
"""

from __future__ import annotations

from datetime import timedelta

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from portal.clock import frozen_at, utcnow
from portal.extensions import db
from portal.models import (
    AppointmentMode,
    ContactMethod,
    ItemKind,
    OutreachResult,
    PatientAnswer,
    Referral,
    Status,
    Urgency,
)
from portal.notifications.delivery import deliver_due_messages
from portal.patients.services import (
    PatientChoice,
    Slot,
    latest_link,
    record_patient_answer,
    send_next_step_link,
)
from portal.referrals import services
from portal.referrals.documents import Upload
from portal.referrals.needs_info import (
    InfoAnswer,
    answer_information,
    open_items,
    request_information,
)
from portal.referrals.tasks import chase_incomplete_referrals
from portal.referrals.workflow import TransitionRefused
from portal.sla.tasks import find_dark_referrals, sweep
from tests.fixtures.desk import PDF, make_referral, user

# What someone could do next, by status; the jobs can run at any time.
CANDIDATES = {
    Status.SUBMITTED: ["first_touch", "request_info", "withdraw"],
    Status.NEEDS_INFO: [
        "first_touch",
        "resume_review",
        "request_info",
        "answer_partly",
        "answer_fully",
        "withdraw",
    ],
    Status.IN_REVIEW: ["accept", "decline", "redirect", "request_info", "withdraw"],
    Status.ACCEPTED: [
        "outreach",
        "send_link",
        "patient_answers",
        "schedule",
        "unreachable",
        "withdraw",
    ],
    Status.SCHEDULED: ["visit_happens", "no_show", "schedule", "outreach", "withdraw"],
    Status.NO_SHOW: ["schedule", "unreachable", "outreach", "withdraw"],
}
JOBS = ["sweep", "deliver", "chase", "follow_up"]


def perform(action: str, referral: Referral, desk, choice: int) -> None:
    intake, clinical = user(desk.intake), user(desk.clinical)
    later = utcnow() + timedelta(days=1 + choice % 5)
    if action == "first_touch":
        services.record_first_touch(referral, intake, expected_version=None)
    elif action == "resume_review":
        services.resume_review(referral, intake, expected_version=None)
    elif action == "request_info":
        request_information(
            referral,
            intake,
            expected_version=None,
            required_item_ids=[],
            other_documents=[],
            other_questions=[f"Question {choice}"],
            message="",
        )
    elif action in ("answer_partly", "answer_fully"):
        items = open_items(referral)
        if not items:
            raise TransitionRefused("nothing asked")
        chosen = items if action == "answer_fully" else items[:1]
        document = Upload("doc.pdf", "application/pdf", PDF)
        answer_information(
            referral,
            user(desk.partner_a),
            InfoAnswer(
                answers={i.id: "answer" for i in chosen if i.kind is ItemKind.ANSWER},
                documents={i.id: document for i in chosen if i.kind is ItemKind.DOCUMENT},
            ),
            expected_version=None,
        )
    elif action == "accept":
        services.accept(referral, clinical, expected_version=None, provider="Dr. P")
    elif action == "decline":
        services.decline(referral, clinical, expected_version=None, reason="Not eligible")
    elif action == "redirect":
        services.redirect_referral(referral, clinical, expected_version=None, destination="X")
    elif action == "outreach":
        results = list(OutreachResult)
        services.log_outreach(
            referral,
            intake,
            expected_version=None,
            channel=ContactMethod.PHONE,
            result=results[choice % len(results)],
        )
    elif action == "send_link":
        send_next_step_link(
            referral,
            intake,
            expected_version=None,
            via=ContactMethod.EMAIL,
            slots=[Slot(later, AppointmentMode.VIDEO)],
        )
    elif action == "patient_answers":
        link = latest_link(referral)
        if link is None or link.used_at or link.revoked_at:
            raise TransitionRefused("no live link")
        answers = list(PatientAnswer)
        answer = answers[choice % len(answers)]
        slot_id = link.slots[0].id if answer is PatientAnswer.SLOT and link.slots else None
        if answer is PatientAnswer.SLOT and slot_id is None:
            answer = PatientAnswer.CALL_ME
        record_patient_answer(link, PatientChoice(answer, ContactMethod.SMS, slot_id))
    elif action == "schedule":
        services.schedule(
            referral,
            intake,
            expected_version=None,
            appointment_at=later,
            mode=AppointmentMode.VIDEO,
        )
    elif action in ("visit_happens", "no_show"):
        if referral.status is not Status.SCHEDULED:
            raise TransitionRefused("not scheduled")
        referral.appointment_at = utcnow() - timedelta(hours=1)
        record = services.record_completed if action == "visit_happens" else services.record_no_show
        record(referral, intake, expected_version=None)
    elif action == "unreachable":
        services.mark_unreachable(referral, intake, expected_version=None)
    elif action == "withdraw":
        services.withdraw(referral, user(desk.partner_a), expected_version=None)
    elif action == "follow_up":
        services.share_follow_up(referral, clinical, expected_version=None, message="Doing well")
    elif action == "sweep":
        sweep()
    elif action == "deliver":
        deliver_due_messages()
    elif action == "chase":
        chase_incomplete_referrals()


steps = st.lists(
    st.tuples(
        st.integers(min_value=0, max_value=1000),  # which of the possible actions
        st.integers(min_value=0, max_value=100),  # a choice inside the action
        st.integers(min_value=0, max_value=60 * 30),  # minutes that pass before the step
    ),
    min_size=1,
    max_size=30,
)


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    steps=steps,
    incomplete=st.booleans(),
    urgent=st.booleans(),
    consent=st.booleans(),
)
def test_no_open_referral_is_ever_without_an_owned_clock_and_a_due_time(
    app, desk, steps, incomplete, urgent, consent
):
    now = utcnow()
    with app.app_context():
        with frozen_at(now):
            reference = make_referral(
                desk,
                Status.NEEDS_INFO if incomplete else Status.SUBMITTED,
                urgency=Urgency.URGENT if urgent else Urgency.ROUTINE,
                consent_to_outcome_sharing=consent,
            )
        for pick, choice, minutes in steps:
            now += timedelta(minutes=minutes)
            with frozen_at(now):
                referral = db.session.scalar(select(Referral).filter_by(reference=reference))
                people = CANDIDATES.get(referral.status, [])
                # Mostly people's actions; a job in about one step in five.
                if people and pick % 5 != 4:
                    action = people[pick % len(people)]
                else:
                    action = JOBS[pick % len(JOBS)]
                try:
                    perform(action, referral, desk, choice)
                    db.session.commit()
                except TransitionRefused:
                    db.session.rollback()
                problems = find_dark_referrals()
                assert problems == [], (action, referral.status, problems)
