"""National Provider Identifier check (10 digits, Luhn over the 80840 prefix)."""

from __future__ import annotations

NPI_PREFIX = "80840"


def luhn_check_digit(digits: str) -> int:
    """The Luhn check digit that completes `digits`."""
    total = 0
    # Double every second digit, starting from the rightmost of the payload.
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2 == 0:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return (10 - total % 10) % 10


def is_valid_npi(value: str) -> bool:
    """True for a well-formed NPI whose check digit is right."""
    if len(value) != 10 or not value.isdigit():
        return False
    return luhn_check_digit(NPI_PREFIX + value[:9]) == int(value[9])
