import re

from portal.referrals.references import REFERENCE_REGEX, new_reference, normalise_reference


def test_references_are_random_and_readable():
    references = {new_reference() for _ in range(500)}
    assert len(references) == 500
    for reference in references:
        assert re.fullmatch(REFERENCE_REGEX, reference)  # what the URL converter accepts
        assert not set(reference[2:].replace("-", "")) & set("ILOU")


def test_typed_references_are_normalised():
    assert normalise_reference(" r-7k3m-9qxd ") == "R-7K3M-9QXD"
    assert normalise_reference("7K3M9QXD") == "R-7K3M-9QXD"
    assert normalise_reference("R-7K3M-9QXO") == "R-7K3M-9QX0"
