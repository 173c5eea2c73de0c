"""URL converters that bound what a path may carry before any view runs."""

from __future__ import annotations

from werkzeug.routing import BaseConverter, IntegerConverter

from portal.referrals.references import REFERENCE_REGEX

# The largest value an id or whole-number column holds on both databases: PostgreSQL's
# INTEGER (SQLite's would hold 2**63 - 1; PostgreSQL refuses to compare past this).
BIGGEST_ID = 2**31 - 1


class IdConverter(IntegerConverter):
    """`<id:name>`: a database id, 1 to BIGGEST_ID. Anything else is a 404, never an
    integer too large for the database to compare."""

    def __init__(self, map, *args, **kwargs) -> None:  # noqa: A002 - Werkzeug's name
        super().__init__(map, min=1, max=BIGGEST_ID)


class ReferenceConverter(BaseConverter):
    """`<ref:name>`: a referral reference such as R-7K3M-9QXD. Anything else is a 404
    before any query (PostgreSQL cannot even compare a string holding NUL)."""

    regex = REFERENCE_REGEX


class TokenConverter(BaseConverter):
    """`<token:name>`: a signed token (URL-safe base64 and dots), at most 400 characters."""

    regex = r"[A-Za-z0-9_.\-]{1,400}"


def install_converters(app) -> None:
    app.url_map.converters["id"] = IdConverter
    app.url_map.converters["ref"] = ReferenceConverter
    app.url_map.converters["token"] = TokenConverter
