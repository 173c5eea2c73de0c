"""Editing a referring office's details, when someone else may be editing them too.

The edit form carries the values it was loaded with (`loaded`, JSON in a hidden field).
The save is one UPDATE conditional on those values still being the stored ones, so of
two people saving at once exactly one succeeds; the other is told which details changed
under them, sees the new values, and keeps what they typed to save again on purpose.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import ColumnElement, update
from sqlalchemy.exc import IntegrityError

from portal.auditing import record_audit
from portal.extensions import db
from portal.models import Partner, User
from portal.text import refusal_for_text

# The details an edit may change (the PartnerForm fields), in the form's order.
DETAILS = (
    "name",
    "specialty",
    "referral_contact_name",
    "referral_contact_email",
    "referral_contact_phone",
)
# Loaded values longer than this were not written by our form (the columns are shorter).
MAX_LOADED_LENGTH = 4000


class LoadedValuesInvalid(ValueError):
    """The form's `loaded` field is not what the edit page wrote (a damaged form)."""


class NameTaken(Exception):
    """Another office already has the name asked for."""


@dataclass(frozen=True)
class SaveResult:
    """`changed`: the details saved; `conflicting`: the details someone else changed
    since the form was loaded (nothing was saved then)."""

    changed: tuple[str, ...] = ()
    conflicting: tuple[str, ...] = ()


def details_of(partner: Partner) -> dict[str, str | None]:
    return {name: getattr(partner, name) for name in DETAILS}


def loaded_field_value(partner: Partner) -> str:
    """What the edit form's hidden `loaded` field holds for `partner` as stored now."""
    return json.dumps(details_of(partner), separators=(",", ":"), ensure_ascii=False)


def parse_loaded(text: str) -> dict[str, str | None]:
    """The values the form was loaded with, or LoadedValuesInvalid. Only what the page
    writes passes: one flat object of the details, each a column's worth of plain text
    (JSON escapes could otherwise smuggle a NUL or a lone surrogate into the query)."""
    if len(text) > MAX_LOADED_LENGTH or not text.startswith("{"):
        raise LoadedValuesInvalid()
    try:
        values = json.loads(text)
    except (ValueError, RecursionError):
        raise LoadedValuesInvalid() from None
    if not isinstance(values, dict) or set(values) != set(DETAILS):
        raise LoadedValuesInvalid()
    for name, value in values.items():
        if value is None:
            continue
        limit = getattr(Partner, name).type.length
        if not isinstance(value, str) or refusal_for_text(
            value, max_length=limit, multiline=False
        ):
            raise LoadedValuesInvalid()
    return values


def _matches(name: str, value: str | None) -> ColumnElement[bool]:
    column = getattr(Partner, name)
    return column.is_(None) if value is None else column == value


def save_details(
    partner: Partner, loaded: dict[str, str | None], wanted: dict[str, str | None], *, by: User
) -> SaveResult:
    """Store `wanted` if the office's details are still `loaded`; audited with the names
    of the details that changed (their values are the office's, not a patient's).
    NameTaken when another office has the name; the caller commits."""
    changed = tuple(name for name in DETAILS if wanted[name] != loaded[name])
    if not changed:
        return SaveResult()
    statement = (
        update(Partner)
        .where(Partner.id == partner.id, *(_matches(name, loaded[name]) for name in DETAILS))
        .values({name: wanted[name] for name in changed})
        .execution_options(synchronize_session=False)
    )
    try:
        with db.session.begin_nested():
            saved = db.session.execute(statement).rowcount
    except IntegrityError:
        raise NameTaken() from None
    db.session.refresh(partner)
    if saved != 1:
        now = details_of(partner)
        return SaveResult(conflicting=tuple(name for name in DETAILS if now[name] != loaded[name]))
    record_audit(
        "partner.updated",
        actor=by,
        target_type="partner",
        target_id=partner.id,
        fields=",".join(changed),
    )
    return SaveResult(changed=changed)
