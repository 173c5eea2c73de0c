"""Pages of a list: the one way the queue, the partner's referrals and the audit log page."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select

from portal.extensions import db


def one_page(
    statement: Select[Any], page: int, size: int, *, rows: bool = False
) -> tuple[list[Any], bool]:
    """The rows of page `page` (from 1) of `statement`, and whether another page follows.
    One query: it asks for one row more than a page to know. `page` is bounded where it
    enters (`query_args.page_arg`), so the offset stays far inside 64 bits. Each item is
    the row's first column, or with `rows` the whole row (an entity and what was
    selected beside it)."""
    result = db.session.execute(statement.limit(size + 1).offset((page - 1) * size))
    items = list(result if rows else result.scalars())
    return items[:size], len(items) > size
