"""Two SQL expressions the metrics need that SQLite and PostgreSQL spell differently."""

from __future__ import annotations

from sqlalchemy import Float, String
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement


class elapsed_seconds(FunctionElement):  # noqa: N801 - reads like a SQL function
    """Seconds from `earlier` to `later` (two timestamp columns)."""

    type = Float()
    inherit_cache = True
    name = "elapsed_seconds"


@compiles(elapsed_seconds, "postgresql")
def _elapsed_postgresql(element, compiler, **kw):
    later, earlier = list(element.clauses)
    return (
        f"EXTRACT(EPOCH FROM ({compiler.process(later, **kw)} - {compiler.process(earlier, **kw)}))"
    )


@compiles(elapsed_seconds, "sqlite")
def _elapsed_sqlite(element, compiler, **kw):
    later, earlier = list(element.clauses)
    return (
        f"((julianday({compiler.process(later, **kw)}) - "
        f"julianday({compiler.process(earlier, **kw)})) * 86400.0)"
    )


class utc_month(FunctionElement):  # noqa: N801
    """'2026-11' for a timestamp, in UTC."""

    type = String()
    inherit_cache = True
    name = "utc_month"


@compiles(utc_month, "postgresql")
def _month_postgresql(element, compiler, **kw):
    (moment,) = list(element.clauses)
    return f"to_char({compiler.process(moment, **kw)} AT TIME ZONE 'UTC', 'YYYY-MM')"


@compiles(utc_month, "sqlite")
def _month_sqlite(element, compiler, **kw):
    (moment,) = list(element.clauses)
    return f"strftime('%Y-%m', {compiler.process(moment, **kw)})"
