"""Every English page and message a patient reads is at reading grade 6 or lower
(Flesch-Kincaid, as textstat measures it), the level US health literacy guidance asks."""

from __future__ import annotations

import re
from datetime import timedelta
from html import unescape
from pathlib import Path
from types import SimpleNamespace

import pytest
import textstat
from flask import render_template

from portal.clock import utcnow
from portal.errors import PATIENT_COPY, PATIENT_CSRF_COPY
from portal.models import Status
from portal.patients.forms import DateOfBirthForm, NextStepForm
from portal.patients.links import LinkProblem

GRADE = 6
# A text, or an email read with its subject.
MESSAGES = sorted(
    [(f"sms/{p.name}",) for p in Path("portal/templates/sms").glob("*.txt")]
    + [
        (f"emails/{p.stem}.subject.txt", f"emails/{p.name}")
        for p in Path("portal/templates/emails").glob("*.txt")
        if p.name.startswith(("patient_", "appointment_reminder", "visit_booked"))
        and not p.name.endswith(".subject.txt")
    ]
)


def readable_text(html: str) -> str:
    """What a reader reads: the page's words without markup, links or the CSRF token."""
    html = re.sub(r"<(script|style|head)\b.*?</\1>", " ", html, flags=re.S)
    text = unescape(re.sub(r"<[^>]+>", " ", html))
    text = re.sub(r"https?://\S+", " ", text)
    return re.sub(r"\s+", " ", text).strip()


def grade(text: str) -> float:
    return textstat.flesch_kincaid_grade(text)


def pages(app) -> dict[str, str]:
    """Every patient page, each variant, rendered in English."""
    soon = utcnow() + timedelta(days=2)
    phone = app.config["PRACTICE_PHONE"]
    practice = app.config["PRACTICE_NAME"]
    rendered = {}
    with app.test_request_context("/p/token"):
        form = DateOfBirthForm(formdata=None)
        rendered["verify"] = render_template("patients/verify.html", form=form, practice=practice)
        choices = NextStepForm(formdata=None)
        choices.set_slots([(1, "Tue, Dec 1, 2026, 2:30 PM EST, video visit")])
        rendered["choices"] = render_template(
            "patients/next_step.html", form=choices, link=None, practice=practice
        )
        for answer in ("slot", "call_me", "decline"):
            for mode in ("video", "phone"):
                slot = SimpleNamespace(starts_at=soon, mode=SimpleNamespace(value=mode))
                rendered[f"done {answer} {mode}"] = render_template(
                    "patients/done.html",
                    link=SimpleNamespace(answer=SimpleNamespace(value=answer)),
                    slot=slot,
                    mode=mode,
                    referral_status=Status.SCHEDULED,
                    referral_appointment_at=soon,
                    practice=practice,
                    phone=phone,
                )
        rendered["done changed"] = render_template(
            "patients/done.html",
            link=SimpleNamespace(answer=SimpleNamespace(value="slot")),
            slot=SimpleNamespace(starts_at=soon),
            mode="video",
            referral_status=Status.ACCEPTED,
            referral_appointment_at=None,
            practice=practice,
            phone=phone,
        )
        for problem in [*LinkProblem, "changed"]:
            rendered[f"problem {problem}"] = render_template(
                "patients/problem.html", problem=str(problem), phone=phone
            )
        for code, copy in [*PATIENT_COPY.items(), ("csrf", PATIENT_CSRF_COPY)]:
            rendered[f"error {code}"] = render_template(
                "patients/error.html", code=code, copy=copy, phone=phone
            )
    return rendered


def test_every_patient_page_is_plain_english(app):
    too_hard = {}
    for name, html in pages(app).items():
        text = readable_text(html)
        assert len(text.split()) > 10, name
        if grade(text) > GRADE:
            too_hard[name] = (grade(text), text)
    assert not too_hard, too_hard


def message_text(text: str) -> str:
    """A line of a message ends a sentence for its reader, with or without a period."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return readable_text(" ".join(line if line[-1] in ".:?!," else line + "." for line in lines))


@pytest.mark.parametrize("templates", MESSAGES, ids=lambda t: t[-1])
def test_every_patient_message_is_plain_english(app, templates):
    with app.test_request_context("/"):
        for mode in ("video", "phone"):
            context = dict(
                practice=app.config["PRACTICE_NAME"],
                sms_name=app.config["PRACTICE_NAME"],
                phone=app.config["PRACTICE_PHONE"],
                link="https://portal.example.org/p/abc.def",
                days=7,
                mode=mode,
                appointment_at=utcnow() + timedelta(days=1),
            )
            text = message_text("\n".join(render_template(t, **context) for t in templates))
            assert len(text.split()) > 8, text
            assert grade(text) <= GRADE, (grade(text), text)
