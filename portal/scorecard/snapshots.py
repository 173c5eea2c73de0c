"""Closed periods' figures, remembered until something about them changes.

A week or a month that has ended changes only when one of its referrals does (a late
first touch, an outcome, a breach reason recorded): time alone changes nothing, except
the re-referral figures until the period's last 30 days have passed. So the rows of each
scorecard table for a closed period are stored (`ScorecardSnapshot`) the first time they
are computed (a page, a CSV, the weekly job) and read back after that.

Staleness is decided by counters, not by deleting rows: every flush that changes
something a figure reads bumps the `ScorecardEpoch` counter of the UTC day that thing
belongs to (a referral's submission day, its outcome day, a breach's day). A snapshot
records the sum of the counters of the days its period touches, read *before* its
figures were computed; it is used only while that sum is unchanged. A change committed
while a snapshot was being computed therefore makes it stale rather than wrong. The
counters live in the same transaction as the change, so a rolled-back change bumps
nothing.

What time alone changes (which referrals' 30 days have passed) is refreshed on every
read of a period that has not settled yet: the re-referral values, a query over the few
referrals of the period whose 30 days have passed (see `RefreshAged`).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, date, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import delete, event, inspect, or_, select
from sqlalchemy.orm import Session

from portal.clock import utcnow
from portal.database import upsert_insert
from portal.extensions import db
from portal.models import (
    OutreachAttempt,
    Partner,
    PatientLink,
    ProcessRating,
    Referral,
    ReferralEvent,
    ScorecardEpoch,
    ScorecardSnapshot,
    SlaClock,
)
from portal.scorecard.metrics import Scope, re_referral_settles_at

# The version of the figures' definitions. Bump it with any change to how a stored
# figure is computed: snapshots written under another version are never read.
# 3: hours and percentages stored unrounded. 4: 30 days are the practice's days.
DEFINITIONS = 4

# A period is stored only once it ended this long ago, so a change made just before
# the end (which bumps no counter yet: no snapshot of an open period exists) has
# committed before anyone computes the period.
GRACE = timedelta(minutes=10)

# Every day's counter contributes to the period that contains it; this one to all.
EVERYTHING = date(1, 1, 1)

Key = tuple[datetime, datetime, str]  # start, end, table name


class Stored(NamedTuple):
    rows: list[tuple]
    computed_at: datetime


def is_closed(scope: Scope, now: datetime) -> bool:
    return scope.end + GRACE <= now


def is_settled(scope: Scope, now: datetime) -> bool:
    """Every referral of the period has had its 30 days (the practice's days, as the
    live figure counts them): time changes nothing more."""
    return re_referral_settles_at(scope) <= now


def stored_before_settling(scope: Scope, stored: Stored) -> bool:
    """Whether stored rows were computed before every referral of the period had had
    its 30 days: their re-referral counts still need topping up (and once topped up
    after the period settled, they are stored again, dated after it)."""
    return not is_settled(scope, stored.computed_at)


def _days(start: datetime, end: datetime) -> tuple[date, date]:
    """The first and last UTC day a half-open period [start, end) touches."""
    return start.astimezone(UTC).date(), (end - timedelta(microseconds=1)).astimezone(UTC).date()


# --- Reading and writing snapshots ----------------------------------------------------


class Memory:
    """The snapshots of one scope (all partners, or one partner) for one request.

    `recall` reads every wanted (period, table) in two statements and notes the epoch
    each must be stored under; `remember` stores rows computed since.
    """

    def __init__(self, partner_id: int | None, now: datetime | None = None) -> None:
        self.partner_id = partner_id or 0
        self.now = now or utcnow()
        self._epochs: dict[Key, int] = {}
        self.remembered = 0  # rows stored, for the caller to commit

    def recall(self, wanted: Iterable[tuple[Scope, str]]) -> dict[Key, Stored]:
        keys = [(s.start, s.end, name) for s, name in wanted if is_closed(s, self.now)]
        if not keys:
            return {}
        first_day = min(_days(start, end)[0] for start, end, _name in keys)
        last_day = max(_days(start, end)[1] for start, end, _name in keys)
        counters = db.session.execute(
            select(ScorecardEpoch.day, ScorecardEpoch.version).where(
                or_(
                    ScorecardEpoch.day.between(first_day, last_day),
                    ScorecardEpoch.day == EVERYTHING,
                )
            )
        ).all()
        everything = sum(version for day, version in counters if day == EVERYTHING)
        for start, end, name in keys:
            low, high = _days(start, end)
            self._epochs[start, end, name] = everything + sum(
                version for day, version in counters if low <= day <= high
            )
        stored = db.session.execute(
            select(
                ScorecardSnapshot.start_at,
                ScorecardSnapshot.end_at,
                ScorecardSnapshot.table_name,
                ScorecardSnapshot.epoch,
                ScorecardSnapshot.rows,
                ScorecardSnapshot.computed_at,
            ).where(
                ScorecardSnapshot.definitions == DEFINITIONS,
                ScorecardSnapshot.partner_id == self.partner_id,
                ScorecardSnapshot.start_at >= min(start for start, _end, _name in keys),
                ScorecardSnapshot.end_at <= max(end for _start, end, _name in keys),
                ScorecardSnapshot.table_name.in_({name for _s, _e, name in keys}),
            )
        )
        return {
            (start, end, name): Stored(decode(rows), computed_at)
            for start, end, name, epoch, rows, computed_at in stored
            if self._epochs.get((start, end, name)) == epoch
        }

    def remember(self, scope: Scope, name: str, rows: list[tuple]) -> None:
        """Store rows computed for a closed period recalled earlier (others are ignored)."""
        epoch = self._epochs.get((scope.start, scope.end, name))
        if epoch is None:
            return
        values = {
            "definitions": DEFINITIONS,
            "start_at": scope.start,
            "end_at": scope.end,
            "partner_id": self.partner_id,
            "table_name": name,
            "epoch": epoch,
            "rows": encode(rows),
            "computed_at": self.now,
        }
        statement = upsert_insert(db.session, ScorecardSnapshot).values(**values)
        db.session.execute(
            statement.on_conflict_do_update(
                index_elements=["definitions", "start_at", "end_at", "partner_id", "table_name"],
                set_={
                    "epoch": statement.excluded.epoch,
                    "rows": statement.excluded.rows,
                    "computed_at": statement.excluded.computed_at,
                },
            )
        )
        self.remembered += 1


def forget_other_definitions() -> None:
    """Delete snapshots no release of this version will read."""
    db.session.execute(
        delete(ScorecardSnapshot).where(ScorecardSnapshot.definitions != DEFINITIONS)
    )
    db.session.commit()


def encode(rows: list[tuple]) -> list[list[Any]]:
    """Rows as JSON values: dates tagged so they come back as dates."""
    return [[{"date": v.isoformat()} if isinstance(v, date) else v for v in row] for row in rows]


def decode(rows: list[list[Any]]) -> list[tuple]:
    return [
        tuple(date.fromisoformat(v["date"]) if isinstance(v, dict) else v for v in row)
        for row in rows
    ]


# --- What makes a snapshot stale --------------------------------------------------------

# Referral columns some figure reads; a change to any other (a reminder sent, a version)
# leaves every figure as it was.
FIGURE_COLUMNS = (
    "submitted_at",
    "partner_id",
    "status",
    "first_touch_at",
    "needs_info_at",
    "triaged_at",
    "scheduled_at",
    "patient_reached_at",
    "outcome_at",
)
BREACH_COLUMNS = ("breached_at", "breach_reason", "stage")
RATING_COLUMNS = ("score", "created_at", "referral_id", "partner_id")


def _changed(obj, names: Iterable[str]) -> bool:
    state = inspect(obj)
    return any(state.attrs[name].history.has_changes() for name in names)


def _moments(obj, names: Iterable[str]) -> list[datetime]:
    """The current and former values of `names` on obj (loading them if need be)."""
    state = inspect(obj)
    found = []
    for name in names:
        history = state.attrs[name].load_history()
        found.extend(v for v in (*history.added, *history.unchanged, *history.deleted) if v)
    return found


def _touched(session: Session) -> tuple[set[datetime], set[int], bool]:
    """What the flush changes: instants whose days' figures change, referrals whose
    submission and outcome days' figures change, and whether every period's do."""
    instants: set[datetime] = set()
    referrals: set[int] = set()
    everything = False
    changed = [(o, True) for o in (*session.new, *session.deleted)]
    changed += [(o, False) for o in session.dirty]
    for obj, whole in changed:  # whole: added or deleted, not merely updated
        if isinstance(obj, Referral):
            if whole or _changed(obj, FIGURE_COLUMNS):
                instants.update(_moments(obj, ("submitted_at", "outcome_at")))
        elif isinstance(obj, ReferralEvent | OutreachAttempt | PatientLink):
            if whole and obj.referral_id:
                referrals.add(obj.referral_id)
        elif isinstance(obj, SlaClock):
            if whole or _changed(obj, BREACH_COLUMNS):
                instants.update(_moments(obj, ("breached_at",)))
        elif isinstance(obj, ProcessRating):
            if whole or _changed(obj, RATING_COLUMNS):
                instants.update(_moments(obj, ("created_at",)))
                referrals.add(obj.referral_id)
        elif isinstance(obj, Partner):
            # Every period's league table lists every partner by name.
            everything = everything or whole or _changed(obj, ("name",))
    return instants, referrals, everything


@event.listens_for(Session, "after_flush")
def _bump_counters(session: Session, _context) -> None:
    instants, referral_ids, everything = _touched(session)
    mapper = inspect(Referral)
    in_session = (
        session.identity_map.get(mapper.identity_key_from_primary_key([i])) for i in referral_ids
    )
    known = [r for r in in_session if r is not None]
    for referral in known:
        instants.update(m for m in (referral.submitted_at, referral.outcome_at) if m)
    missing = referral_ids - {r.id for r in known}
    if missing:
        for moments in session.connection().execute(
            select(Referral.submitted_at, Referral.outcome_at).where(Referral.id.in_(missing))
        ):
            instants.update(m for m in moments if m)
    days = {_naive_utc(i).date() for i in instants} | ({EVERYTHING} if everything else set())
    if days:
        # Sorted: two transactions bumping the same days lock them in the same order.
        _bump(session, sorted(days))


def _bump(session: Session, days: list[date]) -> None:
    session.connection().execute(
        upsert_insert(session, ScorecardEpoch)
        .values([{"day": day, "version": 1} for day in days])
        .on_conflict_do_update(index_elements=["day"], set_={"version": ScorecardEpoch.version + 1})
    )


def _naive_utc(moment: datetime) -> datetime:
    # Values read straight from SQLite come back naive (they are UTC).
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
