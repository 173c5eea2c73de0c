"""Slowing down password and code guessing without letting anyone lock an account.

Every attempt is a `sign_in_attempt` row. Before checking a password or a code we ask
how long the caller must wait, from three counts over the last SIGN_IN_WINDOW:

- failures for this account from this address (since its last success there): past
  the free ones each failure doubles the wait, up to SIGN_IN_MAX_DELAY;
- failures from this address on any account (password spraying), the same way;
- failures for this account from everywhere: past SIGN_IN_ACCOUNT_HOURLY_LIMIT,
  addresses the account never signed in from wait for the window to pass, while its
  usual addresses go on as normal (ASVS 2.2.1: a cap per account, no lock-out).

A wait is never a lock: the right password from the user's usual place works, and a
password reset always does. Attempts refused for waiting are not counted as failures.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import ngettext
from sqlalchemy import func, select

from portal.clock import utcnow
from portal.extensions import db
from portal.models import AttemptKind, SignInAttempt


@dataclass(frozen=True)
class Wait:
    """How long the caller must wait before the next attempt is checked."""

    seconds: int

    def __bool__(self) -> bool:
        return self.seconds > 0

    @property
    def in_words(self) -> str:
        if self.seconds < 60:
            return ngettext("%(num)d second", "%(num)d seconds", self.seconds)
        minutes = -(-self.seconds // 60)
        return ngettext("%(num)d minute", "%(num)d minutes", minutes)


NO_WAIT = Wait(0)


def _doubling_delay(failures: int, free: int) -> timedelta:
    if failures < free:
        return timedelta(0)
    cap = current_app.config["SIGN_IN_MAX_DELAY"]
    exponent = min(failures - free, 20)
    return min(timedelta(seconds=2**exponent), cap)


def _failures(kind: AttemptKind, since: datetime, **match: str) -> tuple[int, datetime | None]:
    """How many failed attempts match, and when the latest was."""
    statement = select(func.count(SignInAttempt.id), func.max(SignInAttempt.at)).where(
        SignInAttempt.kind == kind,
        SignInAttempt.succeeded.is_(False),
        SignInAttempt.at > since,
    )
    for column, value in match.items():
        statement = statement.where(getattr(SignInAttempt, column) == value)
    count, latest = db.session.execute(statement).one()
    return count, latest


def _last_success(kind: AttemptKind, email: str, address: str) -> datetime | None:
    return db.session.scalar(
        select(func.max(SignInAttempt.at)).where(
            SignInAttempt.kind == kind,
            SignInAttempt.email == email,
            SignInAttempt.address == address,
            SignInAttempt.succeeded.is_(True),
        )
    )


def wait_before_attempt(kind: AttemptKind, email: str, address: str) -> Wait:
    """How long `address` must wait before an attempt on `email` is checked."""
    config = current_app.config
    now = utcnow()
    window_start = now - config["SIGN_IN_WINDOW"]
    last_success = _last_success(kind, email, address)
    waits = [timedelta(0)]

    since = max(window_start, last_success) if last_success else window_start
    pair_failures, pair_latest = _failures(kind, since, email=email, address=address)
    if pair_latest is not None:
        delay = _doubling_delay(pair_failures, config["SIGN_IN_FREE_FAILURES_PER_PAIR"])
        waits.append(pair_latest + delay - now)

    address_failures, address_latest = _failures(kind, window_start, address=address)
    if address_latest is not None:
        delay = _doubling_delay(address_failures, config["SIGN_IN_FREE_FAILURES_PER_ADDRESS"])
        waits.append(address_latest + delay - now)

    familiar = last_success is not None and last_success > now - timedelta(
        days=config["SIGN_IN_FAMILIAR_DAYS"]
    )
    if not familiar:
        account_failures, _latest = _failures(kind, window_start, email=email)
        if account_failures >= config["SIGN_IN_ACCOUNT_HOURLY_LIMIT"]:
            oldest = db.session.scalar(
                select(func.min(SignInAttempt.at)).where(
                    SignInAttempt.kind == kind,
                    SignInAttempt.email == email,
                    SignInAttempt.succeeded.is_(False),
                    SignInAttempt.at > window_start,
                )
            )
            waits.append(oldest + config["SIGN_IN_WINDOW"] - now)

    longest = max(waits)
    if longest <= timedelta(0):
        return NO_WAIT
    return Wait(max(1, int(-(-longest.total_seconds() // 1))))


def record_attempt(kind: AttemptKind, email: str, address: str, *, succeeded: bool) -> None:
    """Count an attempt whose password or code was checked (the caller commits)."""
    db.session.add(
        SignInAttempt(kind=kind, email=email, address=address, succeeded=succeeded, at=utcnow())
    )


REQUEST_WINDOW = timedelta(hours=1)


def recent_requests(kind: AttemptKind, **match: str) -> int:
    """How many `kind` attempts (of any outcome) match in the last REQUEST_WINDOW."""
    statement = select(func.count(SignInAttempt.id)).where(
        SignInAttempt.kind == kind, SignInAttempt.at > utcnow() - REQUEST_WINDOW
    )
    for column, value in match.items():
        statement = statement.where(getattr(SignInAttempt, column) == value)
    return db.session.scalar(statement) or 0
