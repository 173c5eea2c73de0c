"""The SQL expression the metrics need that SQLite and PostgreSQL spell differently."""

from __future__ import annotations

from sqlalchemy import Float
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
    # julianday() counts whole milliseconds, but as a float of some 2.5 million days: the
    # difference comes back a few microseconds off (4.75 h as 4.7499999963). Rounded to
    # the millisecond it is exact again, so a figure is not rounded the wrong way later.
    later, earlier = list(element.clauses)
    return (
        f"round((julianday({compiler.process(later, **kw)}) - "
        f"julianday({compiler.process(earlier, **kw)})) * 86400.0, 3)"
    )
