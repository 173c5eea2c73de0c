"""Every text message fits one SMS segment, in English and Spanish, at its longest."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from portal import create_app
from portal.clock import frozen_at
from portal.config import ConfigurationError, TestConfig
from portal.formatting import format_visit_when
from portal.i18n import patient_language
from portal.models import PatientLanguage, PatientLink
from portal.notifications.outbox import sms_body
from portal.notifications.sms import (
    BASE_URL_MAX_LENGTH,
    SMS_NAME_MAX_LENGTH,
    is_gsm7,
    segments,
    septets,
    to_gsm7,
)
from portal.patients.links import NEXT_STEP, new_public_id, sign

TEMPLATES = sorted(p.stem for p in Path("portal/templates/sms").glob("*.txt"))
LONGEST_NAME = "M" * SMS_NAME_MAX_LENGTH
LONGEST_BASE = "https://" + "r" * (BASE_URL_MAX_LENGTH - len("https://.org")) + ".org"


def _longest_visit_when(now: datetime) -> datetime:
    """The visit whose 'tomorrow, Wed, Sep 30 at 12:30 PM' is longest in the current
    language: every day of a year, at a two-digit hour, each seen from the day before."""
    candidates = [now + timedelta(days=day, hours=hour) for day in range(366) for hour in (0, 3)]

    def length(visit: datetime) -> int:
        return len(format_visit_when(visit, visit - timedelta(days=1)))

    return max(candidates, key=length)


@pytest.mark.parametrize("language", list(PatientLanguage))
@pytest.mark.parametrize("template", TEMPLATES)
def test_every_text_fits_one_segment(database_url, template, language):
    assert len(LONGEST_BASE) == BASE_URL_MAX_LENGTH
    app = create_app(
        TestConfig,
        DATABASE_URL=database_url,
        PRACTICE_NAME="A practice with a long name, Inc.",
        PRACTICE_SMS_NAME=LONGEST_NAME,
        PORTAL_BASE_URL=LONGEST_BASE,
    )
    noon = datetime(2026, 1, 1, 17, 30, tzinfo=UTC)  # 12:30 PM in New York
    with app.test_request_context("/"), patient_language(language):
        link = f"{LONGEST_BASE}/p/{sign(PatientLink(public_id=new_public_id(), purpose=NEXT_STEP))}"
        visit = _longest_visit_when(noon)
        for mode in ("video", "phone"):
            with frozen_at(visit - timedelta(days=1)):  # "tomorrow, ..." is the longest
                body = sms_body(
                    template,
                    sms_name=LONGEST_NAME,
                    practice=app.config["PRACTICE_NAME"],
                    phone="(202) 555-0100",
                    link=link,
                    days=7,
                    mode=mode,
                    appointment_at=visit,
                )
            assert is_gsm7(body), body
            assert segments(body) == 1, f"{septets(body)} characters: {body}"
            assert LONGEST_NAME in body and "(202) 555-0100" in body


def test_spanish_accents_outside_gsm7_become_plain_letters():
    text = to_gsm7("Elija su próximo paso: ¿Preguntas? Llámenos, teléfono, mañana, Día")
    assert text == "Elija su proximo paso: ¿Preguntas? Llamenos, teléfono, mañana, Dia"
    assert is_gsm7(text)
    assert to_gsm7("2:30\u202fp.m. “quoted” — yes") == '2:30 p.m. "quoted" - yes'


def test_segments_are_counted_as_phones_count_them():
    assert segments("a" * 160) == 1 and segments("a" * 161) == 2
    assert segments("€" * 80) == 1 and segments("€" * 81) == 2  # two septets each
    assert segments("á" * 70) == 1 and segments("á" * 71) == 2  # UCS-2


def test_a_practice_name_too_long_for_a_text_is_refused_at_start(database_url):
    with pytest.raises(ConfigurationError, match="PRACTICE_SMS_NAME"):
        create_app(TestConfig, DATABASE_URL=database_url, PRACTICE_NAME="N" * 25)
    create_app(
        TestConfig,
        DATABASE_URL=database_url,
        PRACTICE_NAME="N" * 60,
        PRACTICE_SMS_NAME="Short name",
    )
    with pytest.raises(ConfigurationError, match="PORTAL_BASE_URL"):
        create_app(TestConfig, DATABASE_URL=database_url, PORTAL_BASE_URL=LONGEST_BASE + "x")
