"""Who is told what when a referral changes."""

from __future__ import annotations

from flask import current_app

from portal.i18n import patient_locale
from portal.models import ContactMethod, Referral, User
from portal.notifications.backends import texts_can_be_sent
from portal.notifications.outbox import portal_url, queue_email, queue_sms
from portal.notifications.sms import sms_practice_name
from portal.referrals.ratings import rating_links


def notify_partner_of_update(referral: Referral, headline: str, *, outcome: bool = False) -> None:
    """Tell the partner's designated referral contact that the referral changed.

    An `outcome` notice is the partner-feedback stage's deliverable: its delivery stops
    that stage's SLA clock. Any notice on a settled referral the office has not rated
    yet invites it to rate the referral process (portal/referrals/ratings.py).
    """
    queue_email(
        purpose="partner_outcome" if outcome else None,
        recipient=referral.partner.referral_contact_email,
        template="partner_update",
        referral=referral,
        reference=referral.reference,
        headline=headline,
        outcome=referral.outcome_class.label,
        link=portal_url("referrals.detail", reference=referral.reference),
        rating_links=rating_links(referral),
    )


def notify_intake_of_urgent_referral(referral: Referral) -> None:
    """Urgent referrals page the on-call intake mailbox at once."""
    queue_email(
        recipient=current_app.config["INTAKE_ONCALL_EMAIL"],
        template="urgent_referral",
        referral=referral,
        reference=referral.reference,
        service_line=referral.service_line.name,
        link=portal_url("referrals.detail", reference=referral.reference),
    )


def notify_intake(referral: Referral, headline: str) -> None:
    """Tell the intake team that something on the referral needs their attention."""
    queue_email(
        recipient=current_app.config["INTAKE_TEAM_EMAIL"],
        template="intake_update",
        referral=referral,
        reference=referral.reference,
        headline=headline,
        link=portal_url("referrals.detail", reference=referral.reference),
    )


def message_patient(
    referral: Referral,
    via: ContactMethod | None,
    template: str,
    *,
    attachment: tuple[str, str] | None = None,
    purpose: str | None = None,
    regarding_id: int | None = None,
    **context: object,
) -> None:
    """A message to the patient in their language, by `via` (else the way they prefer),
    falling back to whichever address they have. It names the practice and gives its
    phone; it never holds details of the referral. An attachment goes by email only.
    `purpose` and `regarding_id` as for queue_email."""
    config = current_app.config
    context |= {
        "practice": config["PRACTICE_NAME"],
        "sms_name": sms_practice_name(config),
        "phone": config["PRACTICE_PHONE"],
    }
    via = via or referral.preferred_contact
    by_email = referral.patient_email and (
        via is ContactMethod.EMAIL
        or not referral.patient_phone
        or not texts_can_be_sent(current_app.config)
    )
    locale = patient_locale(referral.patient_language)
    if by_email:
        queue_email(
            recipient=referral.patient_email,
            template=template,
            referral=referral,
            purpose=purpose,
            regarding_id=regarding_id,
            attachment=attachment,
            locale=locale,
            **context,
        )
    elif referral.patient_phone:  # a text carries no attachment
        queue_sms(
            recipient=referral.patient_phone,
            template=template,
            referral=referral,
            purpose=purpose,
            regarding_id=regarding_id,
            locale=locale,
            **context,
        )


def send_patient_next_step(referral: Referral, via: ContactMethod, link: str) -> None:
    """The patient's link: by email or text, saying nothing about the referral."""
    message_patient(
        referral,
        via,
        "patient_next_step",
        link=link,
        days=current_app.config["PATIENT_LINK_MAX_AGE"].days,
    )


def send_invitation(user: User, token: str) -> None:
    queue_email(
        recipient=user.email,
        template="invitation",
        full_name=user.full_name,
        link=portal_url("accounts.accept", token=token),
        days=current_app.config["INVITATION_MAX_AGE"].days,
    )
