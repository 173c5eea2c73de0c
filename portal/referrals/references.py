"""Public referral references such as R-7K3M-9QXD: random, short, easy to read aloud."""

from __future__ import annotations

import re
import secrets

# Crockford-style alphabet: no I, L, O or U, so nothing is misread on the phone.
ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# What a reference looks like; the `<ref:...>` URL converter matches the same.
REFERENCE_REGEX = r"R-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}"


def new_reference() -> str:
    """A fresh random reference (40 bits; the unique constraint catches the rare clash)."""
    chars = "".join(secrets.choice(ALPHABET) for _ in range(8))
    return f"R-{chars[:4]}-{chars[4:]}"


def normalise_reference(text: str) -> str:
    """What a person typed, as a reference: upper case, common misreadings fixed."""
    cleaned = text.strip().upper().replace("O", "0").replace("I", "1").replace("L", "1")
    cleaned = re.sub(r"[^0-9A-Z]", "", cleaned)
    if cleaned.startswith("R") and len(cleaned) == 9:
        cleaned = cleaned[1:]
    if len(cleaned) == 8:
        return f"R-{cleaned[:4]}-{cleaned[4:]}"
    return text.strip().upper()

