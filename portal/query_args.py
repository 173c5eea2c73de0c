"""Typed, bounded query-string parameters: the one way a view reads `request.args`.

A value that is present but not what the parameter allows is the client's mistake and
answers 400 with a sentence saying which parameter and why, before any query runs. A
missing or empty parameter is the default. Text parameters refuse control characters
(PostgreSQL cannot even compare a string holding NUL).
"""

from __future__ import annotations

from datetime import date

from flask import abort, request

from portal.converters import BIGGEST_ID
from portal.text import refusal_for_text

# Far beyond any real list; keeps OFFSET arithmetic well inside 64 bits.
MAX_PAGE = 100_000
# Dates a report or filter may name: wide enough for any real question, narrow enough
# that a week or month around them never leaves the calendar Python can represent.
EARLIEST_DATE = date(1800, 1, 1)
LATEST_DATE = date(2199, 12, 31)


class BadParameter(Exception):
    """A query parameter the client sent is not one the page can use."""


def _raw(name: str) -> str | None:
    values = request.args.getlist(name)
    if len(values) > 1:
        abort(400, description=f"Send the “{name}” parameter once.")
    value = values[0].strip() if values else ""
    return value or None


def _integer(name: str, raw: str, low: int, high: int) -> int:
    # At most 19 digits before int(): a million-digit number costs nothing to refuse.
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 19) or not low <= int(raw) <= high:
        abort(400, description=f"“{name}” must be a whole number from {low} to {high}.")
    return int(raw)


def page_arg(name: str = "page") -> int:
    """A page number, 1 to MAX_PAGE; 1 when absent."""
    raw = _raw(name)
    return 1 if raw is None else _integer(name, raw, 1, MAX_PAGE)


def id_arg(name: str) -> int | None:
    """A database id filter, 1 to BIGGEST_ID; None when absent."""
    raw = _raw(name)
    return None if raw is None else _integer(name, raw, 1, BIGGEST_ID)


def date_arg(name: str) -> date | None:
    """An ISO 8601 date (2026-11-02) between EARLIEST_DATE and LATEST_DATE; None when absent."""
    raw = _raw(name)
    if raw is None:
        return None
    try:
        value = date.fromisoformat(raw) if len(raw) == 10 else None
    except ValueError:
        value = None
    if value is None or not EARLIEST_DATE <= value <= LATEST_DATE:
        abort(
            400,
            description=f"“{name}” must be a date written like 2026-11-02, "
            f"from {EARLIEST_DATE.year} to {LATEST_DATE.year}.",
        )
    return value


def text_arg(name: str, *, max_length: int) -> str:
    """Free text such as a search, at most `max_length` characters; "" when absent."""
    raw = _raw(name) or ""
    problem = refusal_for_text(raw, max_length=max_length, multiline=False)
    if problem:
        abort(400, description=f"“{name}”: {problem}")
    return raw


def choice_arg(name: str, choices, default: str = "") -> str:
    """One of `choices` (strings); `default` when absent."""
    raw = _raw(name)
    if raw is None:
        return default
    if raw not in choices:
        abort(400, description=f"“{name}” is not one of the choices this page offers.")
    return raw
