"""Demo data: three partners, a user for every role, four service lines and a desk's
worth of referrals spread over the last 90 days and every status.

Referrals are played forward through the real service functions with a moved clock,
so their timelines, milestones and audit entries are exactly what the portal itself
would have written. Every name, number and address here is fictional.
"""

from __future__ import annotations

import random
import secrets
from datetime import date, timedelta

import pyotp
from sqlalchemy import func, select

from portal.accounts.passwords import hash_password
from portal.clock import frozen_at, utcnow
from portal.extensions import db
from portal.fhir.registry import register_client
from portal.models import (
    FHIR_SCOPES,
    STAFF_ROLES,
    AppointmentMode,
    Channel,
    ContactMethod,
    ItemKind,
    MessageStatus,
    OutboxMessage,
    OutreachResult,
    Partner,
    PatientLanguage,
    Referral,
    RequiredItem,
    Role,
    ServiceLine,
    Status,
    Urgency,
    User,
)
from portal.patients.services import Slot, send_next_step_link
from portal.referrals import services
from portal.referrals.documents import Upload
from portal.scorecard.tasks import send_weekly_scorecards
from portal.sla.clocks import stop_partner_feedback

DEMO_PASSWORD = "demo-password-2026"  # noqa: S105 - printed for the demo on purpose
# The demo EHR (docs/fhir.md walks through it): Maple Street's FHIR client, with a
# secret printed with the sign-ins (a real client's secret is shown once, then hashed).
DEMO_FHIR_CLIENT_ID = "demo-maple-ehr"
DEMO_FHIR_SECRET = "demo-fhir-secret-2026-printed-on-purpose"  # noqa: S105 - printed on purpose
# How the demo EHR names the service lines: a code system of the demo practice's own (a
# real practice would usually configure SNOMED CT referral codes).
DEMO_SERVICE_CODES = "https://northwind-telehealth.example/fhir/CodeSystem/service-lines"
STALL_CHANCE = 0.06

DEMO_PARTNERS = [
    ("Maple Street Family Medicine", "Primary care", "Dana Whitfield", "referrals@maple.example"),
    ("Riverside Cardiology Associates", "Cardiology", "Luis Ortega", "intake@riverside.example"),
    (
        "St. Brendan's Hospital",
        "Hospital discharge planning",
        "Amara Okafor",
        "discharge@stbrendans.example",
    ),
]

DEMO_USERS = [
    ("partner@maple.example", "Priya Natarajan", Role.PARTNER, "Maple Street Family Medicine"),
    ("partner@riverside.example", "Tom Becker", Role.PARTNER, "Riverside Cardiology Associates"),
    ("partner@stbrendans.example", "Grace Liu", Role.PARTNER, "St. Brendan's Hospital"),
    ("intake@portal.example", "Irene Intake", Role.INTAKE, None),
    ("clinical@portal.example", "Dr. Colin Clinical", Role.CLINICAL, None),
    ("success@portal.example", "Sam Success", Role.PARTNER_SUCCESS, None),
    ("admin@portal.example", "Ada Admin", Role.ADMIN, None),
]

DEMO_SERVICE_LINES = [
    (
        "Behavioral health",
        "Telepsychiatry and therapy for adults.",
        "Adults 18 and over\nDepression, anxiety, ADHD or insomnia\nNot in acute crisis "
        "(send crises to emergency services)",
        [("PHQ-9 or GAD-7 score", ItemKind.ANSWER), ("Current medication list", ItemKind.ANSWER)],
    ),
    (
        "Cardiac rehabilitation",
        "Supervised virtual cardiac rehab after a cardiac event.",
        "Myocardial infarction, CABG, PCI or stable heart failure in the last 12 months\n"
        "Cleared for exercise by a cardiologist",
        [
            ("Most recent echocardiogram report", ItemKind.DOCUMENT),
            ("Exercise clearance note", ItemKind.DOCUMENT),
        ],
    ),
    (
        "Diabetes and endocrinology",
        "Virtual endocrinology visits and diabetes education.",
        "Type 1 or type 2 diabetes with HbA1c above 8%\nThyroid or adrenal disorders",
        [("Latest HbA1c result and date", ItemKind.ANSWER)],
    ),
    (
        "Sleep medicine",
        "Sleep apnea and insomnia evaluation, home sleep testing.",
        "Suspected obstructive sleep apnea (STOP-BANG 3 or more)\nChronic insomnia",
        [],
    ),
]
# Each demo service line's referral packet (what the admin would write on its form).
DEMO_PACKETS = {
    "Behavioral health": {
        "packet_treats": "Video visits with psychiatrists and licensed therapists.\n"
        "- Depression and anxiety\n- Adult ADHD, evaluation and treatment\n"
        "- Insomnia (CBT-I)\n- Medication management after a hospital stay",
        "packet_after": "The first visit is a 60-minute video assessment; therapy follows "
        "weekly or every other week.",
        "packet_contacts": "Behavioral health coordinator: (202) 555-0114, weekdays 9 AM to 5 PM\n"
        "For a patient in crisis, call 988 or 911: do not send a referral.",
    },
    "Cardiac rehabilitation": {
        "packet_treats": "Twelve weeks of supervised exercise and education by video, with a "
        "home blood pressure cuff and a heart rate monitor sent to the patient.\n"
        "- After a heart attack, bypass surgery or a stent\n"
        "- Stable heart failure (NYHA I to III)\n- Stable angina",
        "packet_how_to_submit": "Send the referral through this portal and attach the echo "
        "report and the exercise clearance note.\n"
        "No portal access yet? Fax the referral to (202) 555-0199; we enter it for you.",
        "packet_after": "Sessions run three times a week; we send you a progress summary "
        "at weeks 6 and 12.",
        "packet_contacts": "Cardiac rehab nurse line: (202) 555-0112, weekdays 8 AM to 4 PM",
    },
    "Diabetes and endocrinology": {
        "packet_treats": "- Type 1 and type 2 diabetes, including insulin starts and pumps\n"
        "- Thyroid, adrenal and pituitary disorders\n- Diabetes education, one to one",
        "packet_after": "A dietitian joins the first visit for patients with diabetes.",
        "packet_contacts": "Endocrinology referral desk: (202) 555-0113",
    },
    "Sleep medicine": {
        "packet_treats": "- Obstructive sleep apnea, with a home sleep test mailed to the "
        "patient\n- Chronic insomnia\n- CPAP that the patient cannot tolerate",
        "packet_after": "The home sleep test is mailed within 5 business days of the first "
        "visit; results go to you and the patient.",
    },
}

FIRST_NAMES = [
    "Alex",
    "Jordan",
    "Maria",
    "Wei",
    "Fatima",
    "Noah",
    "Elena",
    "Kofi",
    "Hannah",
    "Diego",
    "Aisha",
    "Liam",
    "Sofia",
    "Yusuf",
    "Mei",
    "Oliver",
    "Zara",
    "Mateo",
]
LAST_NAMES = [
    "Rivera",
    "Chen",
    "Okoye",
    "Johansson",
    "Patel",
    "Nguyen",
    "Kowalski",
    "Haddad",
    "Brown",
    "Silva",
    "Murphy",
    "Kim",
    "Ibrahim",
    "Novak",
    "Garcia",
    "Schmidt",
]
PROVIDERS = ["Dr. Helen Park", "Dr. James Osei", "Dr. Rosa Martinez", "Dr. Ian Fletcher"]
REFERRING = [
    ("Dr. Ruth Adler", "1234567893"),
    ("Dr. Kenji Sato", "1245319599"),
    ("Dr. Maya Brooks", "1003000126"),
]
REASONS = {
    "Behavioral health": [
        "Worsening depression despite SSRI",
        "Generalised anxiety, panic attacks",
        "Adult ADHD evaluation",
    ],
    "Cardiac rehabilitation": [
        "Post-MI rehabilitation",
        "Cardiac rehab after CABG",
        "Heart failure, NYHA II, rehab",
    ],
    "Diabetes and endocrinology": [
        "Type 2 diabetes, HbA1c 9.4%",
        "Hypothyroidism, dose review",
        "New type 1 diabetes, education",
    ],
    "Sleep medicine": [
        "Snoring and daytime sleepiness",
        "Chronic insomnia",
        "Suspected obstructive sleep apnea",
    ],
}
# A one-page PDF, enough to show a document on a referral.
DEMO_PDF = (
    b"%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj 2 0 obj<</Type/Pages/Kids[3 0 R]"
    b"/Count 1>>endobj 3 0 obj<</Type/Page/Parent 2 0 R/MediaBox[0 0 200 200]>>endobj\n"
    b"trailer<</Root 1 0 R>>\n%%EOF\n"
)


def demo_totp_secret() -> str | None:
    """The authenticator key every demo staff account was enrolled with."""
    staff_email = next(email for email, _n, role, _p in DEMO_USERS if role in STAFF_ROLES)
    return db.session.scalar(select(User.totp_secret).where(User.email == staff_email))


def demo_already_loaded() -> bool:
    return db.session.scalar(select(User.id).where(User.email == DEMO_USERS[-1][0])) is not None


def load_demo_data(referral_count: int = 200, seed: int = 7) -> str:
    """Create the demo desk and commit it. Returns a one-line summary."""
    rng = random.Random(seed)
    partners = {
        name: Partner(
            name=name,
            specialty=specialty,
            referral_contact_name=contact,
            referral_contact_email=email,
        )
        for name, specialty, contact, email in DEMO_PARTNERS
    }
    db.session.add_all(partners.values())
    # Staff sign in with a second factor; the demo enrols them all with one random key
    # (printed with the sign-ins) so the tour does not start with five enrolments.
    totp_secret = pyotp.random_base32()
    users = {}
    for email, name, role, partner_name in DEMO_USERS:
        users[role, partner_name] = User(
            email=email,
            full_name=name,
            role=role,
            partner=partners.get(partner_name) if partner_name else None,
            # One shared password, but every account its own salted hash.
            password_hash=hash_password(DEMO_PASSWORD),
            totp_secret=totp_secret if role in STAFF_ROLES else None,
            totp_enabled_at=utcnow() if role in STAFF_ROLES else None,
        )
    db.session.add_all(users.values())
    lines = []
    for name, description, criteria, items in DEMO_SERVICE_LINES:
        line = ServiceLine(
            name=name,
            description=description,
            eligibility_criteria=criteria,
            packet_updated_at=utcnow(),
            fhir_system=DEMO_SERVICE_CODES,
            fhir_code=service_code(name),
            **DEMO_PACKETS.get(name, {}),
        )
        line.all_required_items = [
            RequiredItem(label=label, kind=kind, position=position)
            for position, (label, kind) in enumerate(items)
        ]
        lines.append(line)
    db.session.add_all(lines)
    db.session.flush()  # the admin's id, for the client's registration
    _register_demo_ehr(partners[DEMO_PARTNERS[0][0]], users[Role.ADMIN, None])
    db.session.commit()

    staff = {role: users[role, None] for role in (Role.INTAKE, Role.CLINICAL)}
    now = utcnow()
    for _ in range(referral_count):
        partner_name = rng.choice(list(partners))
        _play_referral(
            rng,
            now=now,
            partner=partners[partner_name],
            submitter=users[Role.PARTNER, partner_name],
            line=rng.choice(lines),
            intake=staff[Role.INTAKE],
            clinical=staff[Role.CLINICAL],
        )
    _send_some_patient_links(staff[Role.INTAKE], now)
    # The demo's history is not news: what it queued counts as delivered a minute
    # after it was written (which also closes the partner-feedback clocks it started).
    _deliver_history()
    db.session.commit()
    # Last week's scorecard emails, as the jobs process writes them: each partner's own
    # figures and partner success's, waiting in the dev outbox.
    send_weekly_scorecards()
    total = db.session.scalar(select(func.count(Referral.id)))
    return (
        f"{len(partners)} partners, {len(users)} users, {len(lines)} service lines, "
        f"{total} referrals"
    )


def service_code(name: str) -> str:
    """'Diabetes and endocrinology' -> 'diabetes-and-endocrinology': the demo EHR's code."""
    return "-".join(name.lower().split())


def _register_demo_ehr(partner: Partner, admin: User) -> None:
    register_client(
        partner,
        "Maple Street EHR (demo)",
        list(FHIR_SCOPES),
        created_by=admin,
        known_id_and_secret=(DEMO_FHIR_CLIENT_ID, DEMO_FHIR_SECRET),
    )


def _deliver_history() -> None:
    for message in db.session.scalars(
        select(OutboxMessage).where(OutboxMessage.status == MessageStatus.PENDING)
    ):
        message.status = MessageStatus.SENT
        message.sent_at = message.created_at + timedelta(minutes=1)
        if message.purpose == "partner_outcome" and message.referral_id:
            with frozen_at(message.sent_at):
                stop_partner_feedback(message.referral_id)


def _send_some_patient_links(intake: User, now) -> None:
    """A few accepted referrals wait on their patient, with a link in the dev outbox."""
    waiting = db.session.scalars(
        select(Referral)
        .where(Referral.status == Status.ACCEPTED)
        .order_by(Referral.submitted_at.desc())
        .limit(4)
    ).all()
    for index, referral in enumerate(waiting):
        start = (now + timedelta(days=2 + index)).replace(minute=0, second=0, microsecond=0)
        with frozen_at(now - timedelta(hours=index)):
            send_next_step_link(
                referral,
                intake,
                expected_version=None,
                via=ContactMethod.EMAIL if referral.patient_email else ContactMethod.SMS,
                slots=[
                    Slot(start + timedelta(hours=offset), AppointmentMode.VIDEO)
                    for offset in (0, 3, 24)
                ],
            )
    db.session.commit()


def _play_referral(rng, *, now, partner, submitter, line, intake, clinical) -> None:
    """Submit one referral in the past and move it forward as far as its age allows."""
    age = timedelta(hours=rng.triangular(0, 90 * 24, 2 * 24))
    moment = now - age
    urgency = Urgency.URGENT if rng.random() < 0.15 else Urgency.ROUTINE
    complete = rng.random() > 0.18
    first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
    provider_name, npi = rng.choice(REFERRING)
    item_answers = {}
    item_documents = {}
    for item in line.required_items:
        if complete or rng.random() < 0.5:
            if item.kind is ItemKind.ANSWER:
                item_answers[item.id] = "Provided in the demo."
            else:
                item_documents[item.id] = Upload(f"{item.label}.pdf", "application/pdf", DEMO_PDF)
    submission = services.ReferralSubmission(
        partner=partner,
        service_line=line,
        urgency=urgency,
        referring_provider_name=provider_name,
        referring_provider_npi=npi,
        patient_first_name=first,
        patient_last_name=last,
        patient_date_of_birth=date(rng.randint(1940, 2005), rng.randint(1, 12), rng.randint(1, 28)),
        # 555-0101..0199 are fictional numbers; 555-0100 is the demo practice's own.
        patient_phone=f"+1202555{rng.randint(101, 199):04d}",
        patient_email=f"{first}.{last}@example.com".lower() if rng.random() < 0.7 else None,
        preferred_contact=rng.choice([ContactMethod.PHONE, ContactMethod.SMS]),
        # About one patient in eight reads Spanish (a US adult in eight speaks it at home),
        # drawn apart from `rng` so the rest of the demo stays as it was.
        patient_language=PatientLanguage.SPANISH
        if random.Random(f"{first} {last}").random() < 0.125
        else PatientLanguage.ENGLISH,
        reason=rng.choice(REASONS[line.name]),
        clinical_context="Demo referral: fictional patient.",
        consent_to_contact=True,
        consent_to_outcome_sharing=rng.random() < 0.8,
        submission_token=secrets.token_urlsafe(16),
        source_channel=Channel.PORTAL,
        item_answers=item_answers,
        item_documents=item_documents,
        check_for_duplicates=False,  # random names: a repeat is chance, not a resend
    )
    with frozen_at(moment):
        referral = services.submit_referral(submission, submitter).referral

    def step(hours_low: float, hours_high: float) -> bool:
        nonlocal moment
        factor = 0.25 if urgency is Urgency.URGENT else 1.0
        moment += timedelta(hours=rng.uniform(hours_low, hours_high) * factor)
        # Some referrals wait at every stage, as on any real desk.
        return moment < now and rng.random() > STALL_CHANCE

    def do(action, *args, **kwargs) -> None:
        with frozen_at(moment):
            action(referral, *args, expected_version=None, **kwargs)
            db.session.flush()

    if not step(0.2, 20):
        return
    do(services.record_first_touch, intake)
    if referral.status is Status.NEEDS_INFO:
        if not step(20, 72) or rng.random() < 0.3:
            return
        do(services.resume_review, intake, note="Missing items received by fax.")
    if rng.random() < 0.04:
        if step(1, 24):
            do(services.withdraw, submitter, reason="Patient chose another provider")
        return
    if not step(1, 40):
        return
    roll = rng.random()
    if roll < 0.1:
        do(services.decline, clinical, reason="Does not meet the eligibility criteria")
        return
    if roll < 0.17:
        do(services.redirect_referral, clinical, destination="In-person specialty clinic")
        return
    do(services.accept, clinical, provider=rng.choice(PROVIDERS))

    failures = 0
    while True:
        if not step(2, 30):
            return
        reached = rng.random() < 0.7
        do(
            services.log_outreach,
            intake,
            channel=referral.preferred_contact,
            result=OutreachResult.REACHED if reached else OutreachResult.NO_ANSWER,
        )
        if reached:
            break
        failures += 1
        if failures >= 3:
            if step(1, 24):
                do(services.mark_unreachable, intake, note="Three attempts, no answer.")
            return
    if not step(0.1, 2):
        return
    appointment = moment + timedelta(days=rng.uniform(2, 14))
    appointment = appointment.replace(minute=0, second=0, microsecond=0)
    do(
        services.schedule,
        intake,
        appointment_at=appointment,
        mode=rng.choice(list(AppointmentMode)),
    )
    moment = appointment + timedelta(hours=rng.uniform(1, 6))
    if moment >= now:
        return
    if rng.random() < 0.85:
        do(services.record_completed, intake)
    else:
        do(services.record_no_show, intake)
