"""The catalog lookups made fast (portal.i18n.translations, the forms' WTForms catalog)
still follow every change of language within one request: a patient's page switched to
Spanish, a message forced into English and back, the next request starting afresh."""

from __future__ import annotations

from flask import render_template_string
from flask_babel import force_locale, gettext
from wtforms import IntegerField

from portal.forms import PortalForm
from portal.i18n import use_language
from portal.models import PatientLanguage

TEMPLATE = '{{ _("There is a problem") }}'


class _Count(PortalForm):
    class Meta:
        csrf = False

    count = IntegerField()


def _count_error() -> str:
    form = _Count(formdata=None)
    try:
        form.count.process_formdata(["many"])
    except ValueError as refusal:
        return str(refusal)
    raise AssertionError("the field took a word for a number")


def test_a_request_switches_language_and_back(app):
    with app.test_request_context("/"):
        assert gettext("There is a problem") == "There is a problem"
        assert render_template_string(TEMPLATE) == "There is a problem"
        assert _count_error() == "Not a valid integer value."
        use_language(PatientLanguage.SPANISH)
        assert gettext("There is a problem") == "Hay un problema"
        assert render_template_string(TEMPLATE) == "Hay un problema"
        assert _count_error() == "No es un valor entero válido."
        with force_locale("en_US"):
            assert gettext("There is a problem") == "There is a problem"
            assert render_template_string(TEMPLATE) == "There is a problem"
        assert render_template_string(TEMPLATE) == "Hay un problema"
    with app.test_request_context("/"):
        assert render_template_string(TEMPLATE) == "There is a problem"


def test_outside_a_request_messages_take_the_forced_language(app):
    with app.app_context():
        with force_locale("es_US"):
            assert gettext("There is a problem") == "Hay un problema"
        assert gettext("There is a problem") == "There is a problem"
