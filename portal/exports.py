"""Every CSV the portal hands out, written one way so that it opens right in a spreadsheet.

- UTF-8 with a byte-order mark, so Excel reads “—” and “é” as such.
- Every field quoted, and a text cell starting with = + - @ tab or CR gets a leading `'`,
  so no spreadsheet runs it as a formula (OWASP “CSV Injection”). Numbers are never
  touched: -3 is a number, not a formula.
- Numbers plain, without units: the unit is in the header (`first_touch_median_hours`,
  `started_care_percent`, percentages from 0 to 100). Dates ISO 8601 (2026-11-02);
  datetimes ISO 8601 in UTC (2026-11-02T15:04:05Z) under a header ending in `_utc`;
  booleans `true`/`false`; nothing (None) an empty cell.

An export is declared once, as an `Export` of typed `Column`s. The CSV, the page that
shows the same table, and the data dictionary (`DICTIONARY`, itself an export) all read
that declaration, so the documentation cannot drift from the files.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from decimal import Decimal
from enum import StrEnum

from flask import Response

BYTE_ORDER_MARK = "\ufeff"
# What a spreadsheet may take for the start of a formula (OWASP's list).
FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r")
SNAKE_CASE = re.compile(r"[a-z][a-z0-9]*(_[a-z0-9]+)*")
# Measurement units a column's name must end with, so a header alone says what it holds.
UNITS_NAMED_IN_HEADER = ("hours", "percent")


class Kind(StrEnum):
    """What a column holds, hence how its cells are written."""

    TEXT = "text"
    INTEGER = "integer"
    NUMBER = "number"
    DATE = "date"
    DATETIME = "datetime"
    BOOLEAN = "boolean"

    @property
    def written_as(self) -> str:
        return KIND_FORMATS[self]


KIND_FORMATS = {
    Kind.TEXT: "Text. A cell that would begin with = + - @ or a tab is written with a "
    "leading ' so that no spreadsheet runs it as a formula.",
    Kind.INTEGER: "A whole number.",
    Kind.NUMBER: "A number, with a decimal point where needed.",
    Kind.DATE: "An ISO 8601 date: 2026-11-02.",
    Kind.DATETIME: "An ISO 8601 date and time in UTC: 2026-11-02T15:04:05Z.",
    Kind.BOOLEAN: "true or false.",
}
_KIND_TYPES: dict[Kind, tuple[type, ...]] = {
    Kind.TEXT: (str,),
    Kind.INTEGER: (int, Decimal),  # PostgreSQL sums of counts arrive as Decimal
    Kind.NUMBER: (int, float, Decimal),
    Kind.DATE: (date,),
    Kind.DATETIME: (datetime,),
    Kind.BOOLEAN: (bool,),
}


@dataclass(frozen=True)
class Column:
    """One typed column: `name` is the CSV header, `label` the page's heading."""

    name: str
    label: str
    kind: Kind
    meaning: str
    unit: str = ""  # "hours", "percent" (0 to 100), "referrals", ...

    def __post_init__(self) -> None:
        if not SNAKE_CASE.fullmatch(self.name):
            raise ValueError(f"column {self.name!r}: headers are snake_case")
        if self.unit in UNITS_NAMED_IN_HEADER and not self.name.endswith(f"_{self.unit}"):
            raise ValueError(f"column {self.name!r}: the header must end in _{self.unit}")
        if self.kind is Kind.DATETIME and not self.name.endswith("_utc"):
            raise ValueError(f"column {self.name!r}: a datetime header ends in _utc")

    def accepts(self, value: object) -> bool:
        if value is None:
            return True
        if isinstance(value, bool) != (self.kind is Kind.BOOLEAN):
            return False
        if isinstance(value, datetime) != (self.kind is Kind.DATETIME):
            return False
        return isinstance(value, _KIND_TYPES[self.kind])


@dataclass(frozen=True)
class Export:
    """A downloadable table, declared once."""

    name: str
    title: str
    meaning: str
    columns: tuple[Column, ...]


def csv_cell(value: object) -> str:
    """One value as its CSV text (see the module docstring)."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(value) if math.isfinite(value) else ""
    if isinstance(value, Decimal):
        return format(value, "f") if value.is_finite() else ""
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("a datetime without a time zone cannot be exported")
        return value.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    if isinstance(value, date):
        return value.isoformat()
    text = str(value)
    return "'" + text if text.startswith(FORMULA_TRIGGERS) else text


def csv_bytes(columns: Sequence[Column], rows: Iterable[Sequence]) -> bytes:
    """The whole file: a header of column names, then each row, every cell checked
    against its column's kind (a mismatch is a bug in the declaration, not data)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow([column.name for column in columns])
    for row in rows:
        if len(row) != len(columns):
            raise ValueError(f"a row of {len(row)} cells for {len(columns)} columns")
        for column, value in zip(columns, row, strict=True):
            if not column.accepts(value):
                raise TypeError(f"column {column.name!r} ({column.kind}) got {value!r}")
        writer.writerow([csv_cell(value) for value in row])
    return (BYTE_ORDER_MARK + buffer.getvalue()).encode("utf-8")


def safe_filename(*parts: object) -> str:
    """`summary-2026-11-16-2026-11-22.csv`: ASCII letters, digits, dots and dashes only."""
    stem = "-".join(str(part) for part in parts if part not in (None, ""))
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", stem).strip(".-")[:120] or "export"
    return f"{stem}.csv"


def csv_download(columns: Sequence[Column], rows: Iterable[Sequence], *name: object) -> Response:
    """A CSV attachment named from `name`'s parts."""
    response = Response(csv_bytes(columns, rows), content_type="text/csv; charset=utf-8")
    response.headers["Content-Disposition"] = f'attachment; filename="{safe_filename(*name)}"'
    return response


# --- The data dictionary: every column of every export ---------------------------------

DICTIONARY = Export(
    "dictionary",
    "Data dictionary",
    "Every column of every export: its header, heading on the page, type, unit and "
    "meaning. Read from the same declarations the exports are written from.",
    (
        Column("export", "Export", Kind.TEXT, "The export's name, as in its file name."),
        Column("column", "Column", Kind.TEXT, "The column's header in that export's CSV."),
        Column("label", "Heading on the page", Kind.TEXT, "The column's heading on the page."),
        Column(
            "type",
            "Type",
            Kind.TEXT,
            "How the cells are written: " + " ".join(f"{k}: {k.written_as}" for k in Kind),
        ),
        Column("unit", "Unit", Kind.TEXT, "The unit of a number (empty for text and dates)."),
        Column("meaning", "Meaning", Kind.TEXT, "What the column holds, and how it is counted."),
    ),
)


def dictionary_rows(exports: Iterable[Export]) -> list[tuple]:
    """The dictionary's rows for these exports, one per column."""
    return [
        (
            export.name,
            column.name,
            column.label,
            str(column.kind),
            column.unit or None,
            column.meaning,
        )
        for export in exports
        for column in export.columns
    ]
