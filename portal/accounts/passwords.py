"""Argon2id password hashing with rehash-on-sign-in when parameters change."""

from __future__ import annotations

import contextlib
import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from flask import current_app
from flask_babel import gettext

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


# zxcvbn reads at most this much of a password (its own limit; the rest only adds).
ZXCVBN_MAX_LENGTH = 72


def password_problems(password: str, *, email: str, full_name: str = "") -> list[str]:
    """Why `password` may not be used, in words (empty when it may).

    NIST SP 800-63B: length over composition rules, and no password found in lists of
    common and breached ones. zxcvbn ships those lists and scores guessability offline.
    """
    from zxcvbn import zxcvbn

    if len(password) < MIN_PASSWORD_LENGTH:
        return [gettext("Use at least %(count)s characters.", count=MIN_PASSWORD_LENGTH)]
    local_part = email.split("@", 1)[0].lower()
    letters = re.sub(r"[^a-z0-9]", "", password.lower())
    email_letters = re.sub(r"[^a-z0-9]", "", email.lower())
    # The address itself, or its start ("office@alpha"), with or without punctuation.
    if letters and (email_letters.startswith(letters) or letters == email_letters):
        return [gettext("Your password cannot be your email address.")]
    email_words = [word for word in re.split(r"[^a-z0-9]+", email.lower()) if word]
    inputs = [email, local_part, *email_words, *full_name.split(), "referral", "portal"]
    result = zxcvbn(password[:ZXCVBN_MAX_LENGTH], user_inputs=inputs)
    if result["score"] >= current_app.config["PASSWORD_MIN_SCORE"]:
        return []
    feedback = result["feedback"]
    advice = " ".join(
        part for part in [feedback.get("warning"), *feedback.get("suggestions", [])] if part
    )
    # zxcvbn's own advice is in English.
    return [
        gettext("This password is too easy to guess.")
        + " "
        + (advice or gettext("Try a few unrelated words together."))
    ]
