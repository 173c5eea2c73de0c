"""The referring office's one-click rating of how the referral process went: a score
from 1 (poor) to 5 (excellent) and an optional comment, one per referral, once the
referral has reached an outcome.

The outcome notice carries a link per score to the rating page. Opening one records
nothing (mail scanners follow links): the page shows the form with that score chosen,
and its button records it. The referral's own page offers the same form with the five
scores as five buttons, so there one click records. A second rating of the same
referral changes the first: the office's latest score and comment stand, and the rating
keeps the date it was first given (the scorecard counts it in that period).

A blueprint of its own, not the referrals one: the partner's notification reads
`rating_links`, and the referrals blueprint's modules import the notifications.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from wtforms import Field, RadioField, TextAreaField
from wtforms.validators import Length, Optional, ValidationError

from portal.accounts.sessions import roles_required
from portal.auditing import record_audit
from portal.clock import utcnow
from portal.database import commit_keeping_loaded
from portal.extensions import db
from portal.forms import PortalForm
from portal.models import ProcessRating, Referral, Role, User
from portal.notifications.outbox import portal_url
from portal.query_args import choice_arg
from portal.referrals.access import get_referral_or_404

bp = Blueprint("ratings", __name__, url_prefix="/referrals")

# The scores and what each means (process_rating.score's check constraint agrees).
SCORE_LABELS = {
    1: _l("1: poor"),
    2: _l("2: fair"),
    3: _l("3: good"),
    4: _l("4: very good"),
    5: _l("5: excellent"),
}
SCORES = tuple(SCORE_LABELS)
SCORE_REFUSAL = _l("Choose a score from 1 to 5.")
COMMENT_MAX_LENGTH = 1000
# The partner's admin page shows this many of the newest comments.
RECENT_COMMENTS = 20


class RatingRefused(Exception):
    """The referral cannot be rated now; the message says why."""


class ProcessRatingForm(PortalForm):
    """A score and an optional comment. Every field is sent once by any browser: a
    repeated one is refused rather than one copy silently chosen."""

    comment_max_length = COMMENT_MAX_LENGTH  # the textarea's maxlength

    score = RadioField(
        _l("How did the referral process go for your office?"),
        choices=[(str(score), label) for score, label in SCORE_LABELS.items()],
        validate_choice=False,  # validate_score says it in words a person can act on
    )
    comment = TextAreaField(
        _l("Comment (optional)"),
        description=_l("What went well, or what we could do better. Leave out patient details."),
        default="",
        filters=[str.strip],
        validators=[Optional(), Length(max=COMMENT_MAX_LENGTH)],
    )

    def validate(self, extra_validators=None) -> bool:
        repeated = [field for field in self if field.raw_data and len(field.raw_data) > 1]
        if repeated:
            for field in self:
                field.errors = (
                    [gettext("This was sent more than once: send it once.")]
                    if field in repeated
                    else []
                )
            return False
        return super().validate(extra_validators)

    def validate_score(self, field: Field) -> None:
        if field.data not in self.score_values:
            raise ValidationError(str(SCORE_REFUSAL))

    @property
    def score_values(self) -> list[str]:
        return [value for value, _label in self.score.choices]


def has_outcome(referral: Referral) -> bool:
    """Whether the office may rate the referral: it has reached its outcome."""
    return referral.status.is_final


def not_yet_message(referral: Referral) -> str:
    return gettext(
        "You can rate the referral process once the referral has reached an outcome; "
        "it is %(status)s now.",
        status=referral.status.label.lower(),
    )


def rating_of(referral: Referral) -> ProcessRating | None:
    return db.session.scalar(select(ProcessRating).where(ProcessRating.referral_id == referral.id))


def rate_process(referral: Referral, user: User, score: int, comment: str) -> bool:
    """Record the office's rating of `referral`, or change the one it gave. Returns
    whether it is new. Audited; the caller commits."""
    if not has_outcome(referral):
        raise RatingRefused(not_yet_message(referral))
    if user.partner_id != referral.partner_id:
        raise RatingRefused(gettext("Only the referring office can rate its referral."))
    if score not in SCORES:
        raise RatingRefused(str(SCORE_REFUSAL))
    now = utcnow()
    rating, created = rating_of(referral), False
    if rating is None:
        try:
            with db.session.begin_nested():
                db.session.add(
                    ProcessRating(
                        referral_id=referral.id,
                        partner_id=referral.partner_id,
                        rated_by_id=user.id,
                        score=score,
                        comment=comment,
                        created_at=now,
                        updated_at=now,
                    )
                )
            created = True
        except IntegrityError:
            rating = rating_of(referral)  # a colleague's rating arrived first: change it
    if rating is not None:
        rating.score, rating.comment = score, comment
        rating.rated_by_id, rating.updated_at = user.id, now
    record_audit(
        "referral.process_rated", actor=user, referral=referral, score=score, changed=not created
    )
    return created


def rating_links(referral: Referral) -> list[tuple[int, str]]:
    """(score, link) for the partner's notice of a settled referral the office has not
    rated yet: each link opens the rating page with that score chosen. None otherwise.
    The links hold the referral's random reference and the score, nothing else."""
    if not has_outcome(referral) or rating_of(referral) is not None:
        return []
    return [
        (score, portal_url("ratings.rate", reference=referral.reference, score=score))
        for score in SCORES
    ]


@dataclass(frozen=True)
class RatingPanel:
    """The referral page's rating form: the office's rating so far, and the form."""

    rating: ProcessRating | None
    form: ProcessRatingForm


@bp.app_template_global()
def process_rating_panel(referral: Referral) -> RatingPanel | None:
    """For referrals/_rating.html on the partner's referral page: None until the referral
    has an outcome, then one query."""
    if not has_outcome(referral):
        return None
    rating = rating_of(referral)
    form = ProcessRatingForm(formdata=None, comment=rating.comment if rating else "")
    # Unique among the referral page's forms.
    form.comment.id = form.comment.label.field_id = "rating-comment"
    return RatingPanel(rating, form)


@bp.app_template_global()
def recent_rating_comments(partner_id: int) -> list[tuple[ProcessRating, str, str | None]]:
    """(rating, referral reference, rater's name) for the partner's newest comments,
    newest first, in one query (admin/partner.html)."""
    return [
        tuple(row)
        for row in db.session.execute(
            select(ProcessRating, Referral.reference, User.full_name)
            .join(Referral, Referral.id == ProcessRating.referral_id)
            .outerjoin(User, User.id == ProcessRating.rated_by_id)
            .where(ProcessRating.partner_id == partner_id, ProcessRating.comment != "")
            .order_by(ProcessRating.updated_at.desc(), ProcessRating.id.desc())
            .limit(RECENT_COMMENTS)
        )
    ]


@bp.route("/<ref:reference>/rating", methods=["GET", "POST"])
@roles_required(Role.PARTNER)
def rate(reference: str):
    """Rate the referral process: the outcome notice's links open this page with their
    score chosen (?score=4), and only its POST records."""
    referral = get_referral_or_404(current_user, reference)
    if not has_outcome(referral):
        return _refused(referral, not_yet_message(referral))
    rating = rating_of(referral)
    if request.method == "POST":
        form = ProcessRatingForm()
        if form.validate():
            score, comment = int(form.score.data), form.comment.data
            try:
                created = rate_process(referral, current_user, score, comment)
            except RatingRefused as refused:
                db.session.rollback()
                return _refused(referral, str(refused))
            db.session.commit()
            flash(
                gettext("Thank you: your rating of the referral process was recorded.")
                if created
                else gettext("Your rating of the referral process was changed."),
                "success",
            )
            return redirect(url_for("referrals.detail", reference=referral.reference))
        status = 400
    else:
        chosen = choice_arg("score", [str(score) for score in SCORES])
        form = ProcessRatingForm(
            formdata=None,
            score=chosen or (str(rating.score) if rating else None),
            comment=rating.comment if rating else "",
        )
        record_audit("referral.rating_viewed", actor=current_user, referral=referral)
        commit_keeping_loaded()  # the page renders the user and referral it loaded
        status = 200
    return render_template("referrals/rate.html", referral=referral, form=form, rating=rating), (
        status
    )


def _refused(referral: Referral, message: str):
    return render_template("referrals/rate.html", referral=referral, refusal=message), 409
