"""What typed text may hold: the one rule every form field and query parameter applies.

Refused: NUL and the other C0 and C1 control characters (tab, CR and LF are allowed
where text may span lines), DEL, and the bidirectional overrides and isolates that can
make a name or note display differently from what it holds ("Trojan Source").
Zero-width joiners stay allowed: names and emoji in some scripts need them.
"""

from __future__ import annotations

import re

from flask_babel import gettext

from portal.formatting import format_number

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_SINGLE_LINE_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
# Lone surrogates cannot be encoded for the database or a page.
_SURROGATE = re.compile(r"[\ud800-\udfff]")


def refusal_for_text(value: str, *, max_length: int | None, multiline: bool) -> str | None:
    """Why `value` cannot be accepted, as a sentence for the user; None when it can."""
    if max_length is not None and len(value) > max_length:
        return gettext(
            "Use at most %(most)s characters (this has %(count)s).",
            most=format_number(max_length),
            count=format_number(len(value)),
        )
    pattern = _CONTROL if multiline else _SINGLE_LINE_CONTROL
    if pattern.search(value) or _SURROGATE.search(value):
        if multiline:
            return gettext("Remove the control or invisible formatting characters from this text.")
        return gettext(
            "Remove the control characters, line breaks or invisible formatting from this."
        )
    return None


def printable(value: str, *, max_length: int) -> str:
    """`value` with every character `refusal_for_text` would refuse removed, cut to
    `max_length`: for what the portal records but nobody typed into a form (a file's
    name, a browser's User-Agent)."""
    cleaned = _SURROGATE.sub("", _SINGLE_LINE_CONTROL.sub("", value))
    return cleaned[:max_length]
