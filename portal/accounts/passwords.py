"""Argon2id password hashing with rehash-on-sign-in when parameters change."""

from __future__ import annotations

import contextlib

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app

MIN_PASSWORD_LENGTH = 12


def hasher() -> PasswordHasher:
    config = current_app.config
    return PasswordHasher(
        time_cost=config["ARGON2_TIME_COST"],
        memory_cost=config["ARGON2_MEMORY_COST"],
        parallelism=config["ARGON2_PARALLELISM"],
    )


def hash_password(password: str) -> str:
    return hasher().hash(password)


def verify_password(password_hash: str | None, password: str) -> tuple[bool, str | None]:
    """Whether `password` matches, and a new hash to store when parameters changed.

    With no stored hash a dummy hash is still verified, so an unknown account takes
    as long to refuse as a wrong password.
    """
    ph = hasher()
    if password_hash is None:
        with contextlib.suppress(VerificationError):
            ph.verify(_dummy_hash(), password)
        return False, None
    try:
        ph.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False, None
    return True, (ph.hash(password) if ph.check_needs_rehash(password_hash) else None)


def _dummy_hash() -> str:
    key = "portal.accounts.dummy_hash"
    if key not in current_app.extensions:
        current_app.extensions[key] = hasher().hash("not-a-password-anyone-has")
    return current_app.extensions[key]
