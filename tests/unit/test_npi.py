import pytest

from portal.referrals.npi import is_valid_npi, luhn_check_digit


@pytest.mark.parametrize("npi", ["1234567893", "1245319599", "1003000126"])
def test_known_good_npis_pass(npi):
    assert is_valid_npi(npi)


@pytest.mark.parametrize(
    "npi", ["1234567890", "1234567894", "123456789", "12345678933", "12345678a3", ""]
)
def test_wrong_check_digit_length_or_characters_fail(npi):
    assert not is_valid_npi(npi)


def test_check_digit_uses_the_80840_prefix():
    # CMS's worked example: 123456789 with the prefix gives check digit 3.
    assert luhn_check_digit("80840" + "123456789") == 3
