"""The business calendar and SLA targets, read from the database once per change.

Every page and job needs them; admins change them a few times a year. So each process
keeps the copy it last read, with the version it read it under, and compares that with
the stored version at most every SETTINGS_CACHE_SECONDS (0: once per request or job
run, which keeps one copy throughout).

The version is a random tag in the JobState row "settings_version". A flush listener
replaces it, in the same transaction, whenever a BusinessHours, Holiday or SlaTarget row
is added, changed or deleted, so no code path can change them without the other
processes noticing. A random tag rather than a counter: it needs no read-modify-write,
and a tag names one state of the rows even across a restore. The process that commits
a change drops its own copy at once: an admin never sees their save missing.

What is stored (a clock's due time, a reminder's time) must follow a save at once in
every process, not within the interval: those reads ask `practice_settings(checked=True)`,
which compares the version now (one primary-key read). Pages and their clocks' wording
read the copy as it is.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, time
from itertools import chain
from secrets import token_hex
from time import monotonic
from types import MappingProxyType
from typing import Any
from zoneinfo import ZoneInfo

from flask import current_app, g, has_app_context
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from portal.clock import utcnow
from portal.database import upsert_insert
from portal.extensions import db
from portal.localtime import forget_practice_zone
from portal.models import BusinessHours, Holiday, JobState, SlaStage, SlaTarget, Urgency
from portal.sla.calendar import BusinessCalendar

VERSION_ROW = "settings_version"
SETTINGS_MODELS = (BusinessHours, Holiday, SlaTarget)
# session.info key: this transaction changed the settings (not yet committed).
CHANGED = "portal.settings_changed"
CACHE = "portal.practice_settings"  # app.extensions key
MEMO = "portal_practice_settings"  # flask.g key: (settings, checked now) for the request


@dataclass(frozen=True)
class PracticeSettings:
    zone: ZoneInfo
    hours: Mapping[int, tuple[time, time] | None]
    holidays: frozenset[date]
    # The admin's targets in business minutes; a missing pair uses the configured default.
    targets: Mapping[tuple[SlaStage, Urgency], float]

    def calendar(self) -> BusinessCalendar:
        """A calendar of the caller's own: its memo of open windows is not thread-safe."""
        return BusinessCalendar(zone=self.zone, hours=self.hours, holidays=self.holidays)


class _Cache:
    """One process's copy (one app per process; two apps in a test act as two workers)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.settings: PracticeSettings | None = None
        self.version: Any = None
        self.checked_until = 0.0
        # Moves on when this process commits a change: a read begun before it is stale.
        self.generation = 0

    def drop(self) -> None:
        with self.lock:
            self.settings, self.version, self.checked_until = None, None, 0.0
            self.generation += 1


def practice_settings(*, checked: bool = False) -> PracticeSettings:
    """The practice's calendar and targets, fixed for a request or job run: this
    process's copy while it is current. `checked`: compared with the stored version now,
    not trusted for SETTINGS_CACHE_SECONDS, for times that will be stored."""
    session = db.session()
    if _changing(session):
        return _read(session)  # this transaction's own view, never shared
    memo = g.get(MEMO)
    if memo is None or (checked and not memo[1]):
        settings = _process_copy(session, checked=checked)
        if memo is not None and memo[0] is not settings:
            forget_practice_zone()  # the zone this request kept was the older copy's
        memo = (settings, checked)
        setattr(g, MEMO, memo)
    return memo[0]


def _process_copy(session: Session, *, checked: bool) -> PracticeSettings:
    extensions = current_app.extensions
    cache = extensions.get(CACHE) or extensions.setdefault(CACHE, _Cache())
    ttl = current_app.config["SETTINGS_CACHE_SECONDS"]
    with cache.lock:
        kept, version, generation = cache.settings, cache.version, cache.generation
        if kept is not None and ttl and not checked and cache.checked_until > monotonic():
            return kept
    # The version first: rows read after it are at least as new as it says.
    stored = session.scalar(select(JobState.value).where(JobState.name == VERSION_ROW))
    settings = kept if kept is not None and stored == version else _read(session)
    with cache.lock:
        # Only over the copy this read began from: a slower thread that read older rows
        # never replaces what a faster one stored since (versions are tags, unordered).
        if cache.generation == generation and cache.settings is kept:
            cache.settings, cache.version = settings, stored
            cache.checked_until = monotonic() + ttl
    return settings


def _changing(session: Session) -> bool:
    """Whether this transaction has changed the settings (flushed or not yet)."""
    return session.info.get(CHANGED, False) or _touches_settings(session)


def _touches_settings(session: Session) -> bool:
    pending = chain(session.new, session.dirty, session.deleted)
    return any(isinstance(obj, SETTINGS_MODELS) for obj in pending)


def _read(session: Session) -> PracticeSettings:
    config = current_app.config
    row = session.execute(
        select(BusinessHours.time_zone, BusinessHours.weekly).where(BusinessHours.id == 1)
    ).first()
    zone, weekly = row if row else (config["PRACTICE_TIME_ZONE"], config["BUSINESS_HOURS"])
    targets = session.execute(
        select(SlaTarget.stage, SlaTarget.urgency, SlaTarget.business_minutes)
    )
    return PracticeSettings(
        zone=ZoneInfo(zone),
        hours=MappingProxyType({int(day): _parse_hours(hours) for day, hours in weekly.items()}),
        holidays=frozenset(session.scalars(select(Holiday.day))),
        targets=MappingProxyType(
            {(stage, urgency): minutes for stage, urgency, minutes in targets}
        ),
    )


def _parse_hours(value) -> tuple[time, time] | None:
    if not value:
        return None
    opens, closes = value
    return time.fromisoformat(opens), time.fromisoformat(closes)


@event.listens_for(Session, "after_flush")
def _replace_version(session: Session, _context) -> None:
    if not _touches_settings(session):
        return
    session.info[CHANGED] = True
    statement = upsert_insert(session, JobState).values(
        name=VERSION_ROW, value={"version": token_hex(8)}, updated_at=utcnow()
    )
    session.connection().execute(
        statement.on_conflict_do_update(
            index_elements=["name"],
            set_={"value": statement.excluded.value, "updated_at": statement.excluded.updated_at},
        )
    )
    if has_app_context():
        _forget_in_request()  # the rest of this request reads the new settings


@event.listens_for(Session, "after_commit")
def _drop_own_copy(session: Session) -> None:
    # Not on releasing a savepoint: the change is not committed until the outer one is.
    if session.info.get(CHANGED) and not session.in_nested_transaction() and has_app_context():
        cache = current_app.extensions.get(CACHE)
        if cache is not None:
            cache.drop()


@event.listens_for(Session, "after_transaction_end")
def _transaction_over(session: Session, transaction) -> None:
    # Committed, rolled back or closed: from now on this session reads the shared copy.
    if transaction.parent is None and session.info.pop(CHANGED, False) and has_app_context():
        _forget_in_request()  # it may hold settings rolled back


def _forget_in_request() -> None:
    g.pop(MEMO, None)
    forget_practice_zone()
