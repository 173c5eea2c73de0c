"""The catalogs: every string is extracted, and every patient-facing one is in Spanish."""

from __future__ import annotations

import re
from pathlib import Path

from babel.messages.extract import extract_from_dir
from babel.messages.pofile import read_po

from portal.errors import PATIENT_COPY, PATIENT_CSRF_COPY

ROOT = Path(__file__).resolve().parents[2]
SPANISH = ROOT / "portal/translations/es/LC_MESSAGES/messages.po"
KEYWORDS = {
    "_": None,
    "gettext": None,
    "ngettext": (1, 2),
    "lazy_gettext": None,
    "_l": None,
}
METHODS = [
    ("portal/**.py", "python"),
    ("jobs/**.py", "python"),
    ("portal/templates/**.html", "jinja2"),
    ("portal/templates/**.txt", "jinja2"),
]
# What a patient reads: their pages, their messages, and what those pages are built
# from (form macros, the shared bounds on every form, the formatting of dates).
PATIENT_FACING = (
    re.compile(r"portal/templates/patients/"),
    re.compile(r"portal/templates/sms/"),
    re.compile(r"portal/templates/emails/(patient_|appointment_reminder|visit_booked)"),
    re.compile(r"portal/templates/_macros/(forms|phone)\.html"),
    re.compile(r"portal/templates/errors/_reference\.html"),
    re.compile(r"portal/patients/"),
    re.compile(r"portal/(forms|text|formatting)\.py"),
)
PLACEHOLDER = re.compile(r"%\([a-z_]+\)[sd]")


def _scanned(path: str) -> bool:
    """Every folder but hidden ones and caches: Babel's default filter would also skip
    folders starting with "_", such as templates/_macros."""
    name = Path(path).name
    return not name.startswith(".") and name != "__pycache__"


def _extracted() -> dict[object, set[str]]:
    """Every marked string in the source, with the files it comes from."""
    found: dict[object, set[str]] = {}
    for filename, _line, message, _comments, _context in extract_from_dir(
        str(ROOT), METHODS, keywords=KEYWORDS, directory_filter=_scanned
    ):
        if filename.startswith((".venv", "tests")):
            continue
        key = message if isinstance(message, str) else tuple(message)
        found.setdefault(key, set()).add(filename)
    return found


def _spanish() -> dict[object, object]:
    with SPANISH.open("rb") as source:
        catalog = read_po(source, locale="es")
    return {
        (m.id if isinstance(m.id, str) else tuple(m.id)): (None if m.fuzzy else m.string)
        for m in catalog
        if m.id
    }


def test_every_marked_string_is_in_the_catalogs():
    """Staff and partner strings too: a translator gets them all. Fails when a string
    is marked but `bash scripts/translations.sh update` was not run."""
    missing = sorted(str(key) for key in _extracted().keys() - _spanish().keys())
    assert not missing, f"run `bash scripts/translations.sh update`; not in the catalog: {missing}"


def _patient_error_copy() -> set[str]:
    """The error pages' patient copy: portal/errors.py also holds the staff copy."""
    return {
        text._args[0]
        for copy in [*PATIENT_COPY.values(), PATIENT_CSRF_COPY]
        for text in (copy.title, copy.message, copy.next_step)
    }


def test_every_patient_facing_string_has_a_spanish_translation():
    spanish = _spanish()
    untranslated = []
    error_copy = _patient_error_copy()
    for key, files in _extracted().items():
        patient_facing = key in error_copy or any(
            pattern.match(name) for pattern in PATIENT_FACING for name in files
        )
        if not patient_facing:
            continue
        translation = spanish.get(key)
        strings = translation if isinstance(translation, tuple | list) else [translation]
        if not all(strings):
            untranslated.append((key, sorted(files)))
    assert not untranslated, "patient-facing strings with no Spanish:\n" + "\n".join(
        f"  {key!r} in {files}" for key, files in untranslated
    )


def test_translations_keep_every_placeholder():
    spanish = _spanish()
    for key, translation in spanish.items():
        if not translation:
            continue
        sources = key if isinstance(key, tuple) else (key,)
        translations = translation if isinstance(translation, tuple | list) else [translation]
        wanted = set(PLACEHOLDER.findall(sources[-1]))
        for text in translations:
            if text:  # an untranslated form shows the English
                assert set(PLACEHOLDER.findall(text)) == wanted, (key, text)
