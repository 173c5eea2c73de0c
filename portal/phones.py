"""US phone numbers: stored in E.164 (+12025550143), shown as (202) 555-0143."""

from __future__ import annotations

import phonenumbers

PHONE_REGION = "US"
# A number people recognise as an example that phonenumbers also accepts (555-01xx
# numbers are reserved for fiction; 555 201 3344 is not a valid number at all).
EXAMPLE_PHONE = "(202) 555-0143"


def _parsed(number: str | None) -> phonenumbers.PhoneNumber | None:
    if not number:
        return None
    try:
        return phonenumbers.parse(number, PHONE_REGION)
    except phonenumbers.NumberParseException:
        return None


def display_phone(number: str | None) -> str:
    """'(202) 555-0143' for a US number, '+44 20 7946 0958' for another; as given when
    it does not parse (a setting typed by hand)."""
    parsed = _parsed(number)
    if parsed is None:
        return number or ""
    national = phonenumbers.region_code_for_number(parsed) == PHONE_REGION
    style = (
        phonenumbers.PhoneNumberFormat.NATIONAL
        if national
        else (phonenumbers.PhoneNumberFormat.INTERNATIONAL)
    )
    return phonenumbers.format_number(parsed, style)


def tel_uri(number: str | None) -> str:
    """'tel:+12025550143' (RFC 3966 with the E.164 number), or "" when it does not parse."""
    parsed = _parsed(number)
    if parsed is None:
        return ""
    return "tel:" + phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
