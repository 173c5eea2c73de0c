"""Languages: which locale a page or a message is written in.

Staff and partners read the practice's locale (PRACTICE_LOCALE, en_US by default).
Patients read English or Spanish in the practice's territory (en_US, es_US): their pages
start in the language the referral records and offer a switch; their messages are
written in it. Strings are marked with gettext (`_` in templates) and translated from
Babel catalogs in portal/translations (scripts/translations.sh extracts and compiles).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from babel import Locale, UnknownLocaleError
from babel.support import NullTranslations
from flask import Flask, current_app, g, request, session
from flask.globals import _cv_app
from flask_babel import Babel, Domain, force_locale, get_domain, get_locale, refresh

from portal.config import ConfigurationError
from portal.models import PatientLanguage

babel = Babel()

# The patient's own choice on their pages (the switch), kept in their browser's session
# per link: a family's shared phone may open another patient's link next.
LANGUAGE_KEY = "patient_languages"


def practice_locale() -> Locale:
    return Locale.parse(current_app.config["PRACTICE_LOCALE"])


def patient_locale(language: PatientLanguage | str) -> Locale:
    """English or Spanish, in the practice's territory: es + en_US gives es_US."""
    practice = practice_locale()
    language = PatientLanguage(language).value
    if language == practice.language:
        return practice
    try:
        return Locale(language, practice.territory)
    except UnknownLocaleError:
        return Locale(language)


# Outside an application there is nothing to translate into.
_UNTRANSLATED = NullTranslations()


def _babel_state() -> object | None:
    """Flask-Babel's per-request namespace (`g._flask_babel`), or None before its first
    use; read without going through the `g` proxy."""
    context = _cv_app.get(None)
    return None if context is None else context.g.__dict__.get("_flask_babel")


def current_locale() -> Locale:
    """The locale this request writes in (a patient's language, a message's forced
    locale, else the practice's): the one `get_locale` gives, in one lookup once the
    request has chosen it."""
    state = _babel_state()
    locale = None if state is None else state.__dict__.get("babel_locale")
    return locale if locale is not None else (get_locale() or Locale.parse("en_US"))


def translations() -> NullTranslations:
    """The catalog for `current_locale()`.

    Flask-Babel finds it again for every string (the locale selector's state, the
    locale's name, its cache): a queue page has some 500 strings and spent a third of
    its time there. This keeps the catalog beside the locale it was found for, and finds
    it again only when the locale object changes (`force_locale`, `refresh`,
    `use_language` all replace it)."""
    state = _babel_state()
    if state is not None:
        found = state.__dict__.get("portal_translations")
        if found is not None and found[0] is state.__dict__.get("babel_locale"):
            return found[1]
    if _cv_app.get(None) is None:
        return _UNTRANSLATED
    catalog = Domain.get_translations(get_domain())
    state = _babel_state()
    state.portal_translations = (get_locale(), catalog)
    return catalog


class _Domain(Domain):
    """The default domain, finding its catalog through `translations()`: Flask-Babel's
    own gettext, ngettext and pgettext (imported across the portal) use it."""

    def get_translations(self) -> NullTranslations:
        return translations()


# Flask-Babel's domain is a cached property of the Babel object: set it once.
babel.domain_instance = _Domain()


def _select_locale() -> str:
    return g.get("portal_locale") or current_app.config["PRACTICE_LOCALE"]


def use_language(language: PatientLanguage | str) -> None:
    """Write the rest of this request (a patient's page) in `language`."""
    g.portal_locale = str(patient_locale(language))
    refresh()


@contextmanager
def patient_language(language: PatientLanguage | str) -> Iterator[None]:
    """Render a patient's message in their language."""
    with force_locale(str(patient_locale(language))):
        yield


def chosen_language(
    default: PatientLanguage | None = None, link_id: str | None = None
) -> PatientLanguage:
    """The patient's language for this page: the switch they used on this link, else
    the referral's, else what their browser asks for."""
    chosen = session.get(LANGUAGE_KEY, {}).get(link_id) if link_id else None
    if chosen in PatientLanguage._value2member_map_:
        return PatientLanguage(chosen)
    if default is not None:
        return default
    best = request.accept_languages.best_match([language.value for language in PatientLanguage])
    return PatientLanguage(best) if best else PatientLanguage(practice_locale().language)


def remember_language(link_id: str, language: PatientLanguage) -> None:
    choices = dict(session.get(LANGUAGE_KEY, {}))
    choices[link_id] = language.value
    session[LANGUAGE_KEY] = choices


def in_practice_locale():
    """For what staff and partners read, whatever page a patient is on."""
    return force_locale(str(practice_locale()))


def install_i18n(app: Flask) -> None:
    try:
        locale = Locale.parse(app.config["PRACTICE_LOCALE"])
    except (ValueError, UnknownLocaleError) as error:
        raise ConfigurationError(
            f"PRACTICE_LOCALE={app.config['PRACTICE_LOCALE']!r} is not a CLDR locale"
        ) from error
    if locale.territory is None:
        raise ConfigurationError(
            f"PRACTICE_LOCALE={app.config['PRACTICE_LOCALE']!r} needs a territory, e.g. en_US"
        )
    _check_catalogs_compiled(app)
    babel.init_app(app, default_locale=str(locale), locale_selector=_select_locale)
    # Templates' `_`, `ngettext` and `pgettext`, straight to the catalog (Jinja's i18n
    # extension %-formats and escapes around them, as with Flask-Babel's own).
    app.jinja_env.install_gettext_callables(
        gettext=lambda string: translations().ugettext(string),
        ngettext=lambda singular, plural, n: translations().ungettext(singular, plural, n),
        pgettext=lambda context, string: translations().upgettext(context, string),
        npgettext=lambda context, singular, plural, n: translations().unpgettext(
            context, singular, plural, n
        ),
        newstyle=True,
    )


def _check_catalogs_compiled(app: Flask) -> None:
    """Refuse to serve Spanish-speaking patients English by accident: every catalog must
    be compiled, and not older than its source (the .mo files are built, not committed)."""
    for source in Path(app.root_path, "translations").glob("*/LC_MESSAGES/*.po"):
        compiled = source.with_suffix(".mo")
        if not compiled.exists() or compiled.stat().st_mtime < source.stat().st_mtime:
            raise ConfigurationError(
                f"{compiled} is missing or older than its .po: "
                "run `bash scripts/translations.sh compile`."
            )
