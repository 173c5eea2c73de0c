"""The consent wording partners attest to, by version.

A wording is never edited in place: a change gets a new version, and old versions
stay here so every consent record can be read with the words that were attested to.
"""

from __future__ import annotations

from dataclasses import dataclass

from portal.models import ConsentKind


@dataclass(frozen=True)
class ConsentWording:
    kind: ConsentKind
    version: str
    text: str


WORDINGS: dict[tuple[ConsentKind, str], ConsentWording] = {
    (w.kind, w.version): w
    for w in (
        ConsentWording(
            ConsentKind.CONTACT,
            "contact-2026-11",
            "The patient agreed that the receiving practice may contact them by phone, "
            "text message or email about this referral.",
        ),
        ConsentWording(
            ConsentKind.OUTCOME_SHARING,
            "outcome-2026-11",
            "The patient agreed that the receiving practice may tell our office the outcome "
            "of this referral and share follow-up notes with us.",
        ),
    )
}

CURRENT_VERSIONS = {
    ConsentKind.CONTACT: "contact-2026-11",
    ConsentKind.OUTCOME_SHARING: "outcome-2026-11",
}


def current_wording(kind: ConsentKind) -> ConsentWording:
    return WORDINGS[(kind, CURRENT_VERSIONS[kind])]


def wording_for(kind: ConsentKind, version: str) -> ConsentWording | None:
    return WORDINGS.get((kind, version))
