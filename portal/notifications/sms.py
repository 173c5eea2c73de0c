"""Text messages in one segment: GSM-7 text of at most 160 characters.

A text with any character outside the GSM 03.38 alphabet is sent as UCS-2, whose
segment holds only 70 characters, and a patient's link alone takes most of that. Spanish
needs á, í, ó, ú, which GSM-7 lacks (it has é, ñ, ü, ¿ and ¡): rather than split every
Spanish text in three, texts are written in GSM-7, the missing accents replaced by their
plain letters, as Spanish-language SMS services commonly do. Every template is rendered
with the longest practice name and address allowed and counted in a test
(tests/unit/test_sms_segments.py); the settings are checked at start-up.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Mapping

from portal.config import ConfigurationError

SEGMENT = 160
UCS2_SEGMENT = 70
# The practice name a text starts with, and the portal address its link starts with.
SMS_NAME_MAX_LENGTH = 24
BASE_URL_MAX_LENGTH = 40

# GSM 03.38: the basic set (one character each) and the extension table (two each).
GSM7_BASIC = (
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM7_EXTENDED = "^{}\\[~]|€\f"
# Typographic characters people paste, and what GSM-7 has instead.
_PLAIN = {"’": "'", "‘": "'", "“": '"', "”": '"', "–": "-", "—": "-", "…": "...", "\u00a0": " "}


def to_gsm7(text: str) -> str:
    """`text` with each character GSM-7 lacks replaced by its plain form (á -> a)."""
    out = []
    for character in text:
        if character in GSM7_BASIC or character in GSM7_EXTENDED:
            out.append(character)
        elif character in _PLAIN:
            out.append(_PLAIN[character])
        else:
            plain = unicodedata.normalize("NFKD", character)
            base = "".join(c for c in plain if not unicodedata.combining(c))
            out.append(base if base and all(c in GSM7_BASIC for c in base) else "?")
    return "".join(out)


def is_gsm7(text: str) -> bool:
    return all(c in GSM7_BASIC or c in GSM7_EXTENDED for c in text)


def septets(text: str) -> int:
    """How many GSM-7 characters `text` costs (extension characters take two)."""
    return sum(2 if c in GSM7_EXTENDED else 1 for c in text)


def segments(text: str) -> int:
    """How many SMS segments `text` is sent in (153/67 per part once it is split)."""
    if is_gsm7(text):
        length, single, part = septets(text), SEGMENT, 153
    else:
        length, single, part = len(text), UCS2_SEGMENT, 67
    if length <= single:
        return 1
    return -(-length // part)


def sms_practice_name(config: Mapping) -> str:
    return config.get("PRACTICE_SMS_NAME") or config["PRACTICE_NAME"]


def check_sms_settings(config: Mapping) -> None:
    """Refuse an unknown SMS provider, and a practice name or portal address too long
    for a one-segment text."""
    from portal.notifications.backends import SMS_BACKENDS

    if config["SMS_BACKEND"] not in SMS_BACKENDS:
        raise ConfigurationError(
            f"SMS_BACKEND={config['SMS_BACKEND']!r} is not one of {', '.join(SMS_BACKENDS)}"
        )
    name = sms_practice_name(config)
    if len(to_gsm7(name)) > SMS_NAME_MAX_LENGTH:
        setting = "PRACTICE_SMS_NAME" if config.get("PRACTICE_SMS_NAME") else "PRACTICE_NAME"
        raise ConfigurationError(
            f"{setting} {name!r} is too long to start a text message: set PRACTICE_SMS_NAME "
            f"to a name of at most {SMS_NAME_MAX_LENGTH} characters."
        )
    base = config["PORTAL_BASE_URL"].rstrip("/")
    if len(base) > BASE_URL_MAX_LENGTH:
        raise ConfigurationError(
            f"PORTAL_BASE_URL {base!r} is longer than {BASE_URL_MAX_LENGTH} characters: "
            "patients' links would not fit in one text message."
        )
