"""URL converters that bound what a path may carry before any view runs."""

from __future__ import annotations

from werkzeug.routing import IntegerConverter

BIGGEST_ID = 2**63 - 1  # a BIGINT on PostgreSQL, an INTEGER on SQLite


class IdConverter(IntegerConverter):
    """`<id:name>`: a database id, 1 to 2**63 - 1. Anything else is a 404, never an
    integer too large for the database to compare."""

    def __init__(self, map, *args, **kwargs) -> None:  # noqa: A002 - Werkzeug's name
        super().__init__(map, min=1, max=BIGGEST_ID)


def install_converters(app) -> None:
    app.url_map.converters["id"] = IdConverter
