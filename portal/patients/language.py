"""Which language a patient's page is written in: one rule for the patient's pages and
for the error pages met on their link."""

from __future__ import annotations

import contextlib
import logging

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from portal.extensions import db
from portal.i18n import chosen_language
from portal.models import PatientLanguage, PatientLink, Referral
from portal.patients.links import find

log = logging.getLogger(__name__)


def page_language(link: PatientLink | None) -> PatientLanguage:
    """The language the patient switched to on this link, else the one their referral
    records, else the one their browser asks for."""
    if link is None:
        return chosen_language()
    language = db.session.scalar(
        select(Referral.patient_language).where(Referral.id == link.referral_id)
    )
    return chosen_language(language, link.public_id)


def error_page_language(path: str) -> PatientLanguage:
    """The language of an error met on a patient's path (`/p/<token>/...`) before its
    page chose one: a form that expired, a wrong method, a failure. The link is found
    from the path without raising, since the error page must come out whatever failed:
    a token that names no link, or a database that cannot say, gives the browser's."""
    parts = path.split("/")
    token = parts[2] if len(parts) > 2 else ""
    try:
        return page_language(find(token))
    except SQLAlchemyError:
        log.warning("error page language: the link lookup failed, the browser's is used")
        with contextlib.suppress(Exception):
            db.session.rollback()
        return chosen_language()
