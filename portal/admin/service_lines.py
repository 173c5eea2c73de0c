"""Creating and editing service lines, their required items and referral packet."""

from __future__ import annotations

from dataclasses import astuple, dataclass

from sqlalchemy import select

from portal.auditing import record_audit
from portal.clock import utcnow
from portal.extensions import db
from portal.models import ItemKind, RequiredItem, ServiceLine, User


@dataclass(frozen=True)
class PacketText:
    """What the admin writes for the referral packet (portal/service_lines/packets.py)."""

    treats: str = ""
    how_to_submit: str = ""
    after: str = ""
    contacts: str = ""


def _packet_as_printed(line: ServiceLine, items: list[tuple[ItemKind, str]]) -> tuple:
    """Everything of the line its packet prints, to tell whether an edit changed it."""
    return (
        line.name,
        line.description,
        line.eligibility_criteria,
        line.packet_treats,
        line.packet_how_to_submit,
        line.packet_after,
        line.packet_contacts,
        tuple(items),
    )


def fhir_coding_taken(line: ServiceLine, coding: tuple[str, str] | None) -> bool:
    """Whether another service line already has this FHIR coding."""
    if coding is None:
        return False
    statement = select(ServiceLine.id).where(
        ServiceLine.fhir_system == coding[0], ServiceLine.fhir_code == coding[1]
    )
    if line.id is not None:
        statement = statement.where(ServiceLine.id != line.id)
    return db.session.scalar(statement.limit(1)) is not None


def save_service_line(
    line: ServiceLine,
    *,
    name: str,
    description: str,
    eligibility_criteria: str,
    active: bool,
    required: dict[ItemKind, list[str]],
    packet: PacketText,
    actor: User,
    fhir_coding: tuple[str, str] | None = None,
) -> ServiceLine:
    """Apply the admin's edit. Items no longer listed are retired, not deleted: referrals
    made while they were required still point at them. The packet's "last updated" date
    moves only when something it prints changed."""
    current_items = [
        (item.kind, item.label)
        for item in sorted(line.all_required_items, key=lambda item: item.position)
        if item.active
    ]
    printed_before = None if line.id is None else _packet_as_printed(line, current_items)
    line.name, line.description = name, description
    line.eligibility_criteria, line.active = eligibility_criteria, active
    line.fhir_system, line.fhir_code = fhir_coding or (None, None)
    (
        line.packet_treats,
        line.packet_how_to_submit,
        line.packet_after,
        line.packet_contacts,
    ) = astuple(packet)
    existing = {(item.kind, item.label): item for item in line.all_required_items}
    wanted = [(kind, label) for kind in ItemKind for label in required.get(kind, [])]
    for item in line.all_required_items:
        item.active = (item.kind, item.label) in wanted
    for position, key in enumerate(wanted):
        item = existing.get(key)
        if item is None:
            item = RequiredItem(kind=key[0], label=key[1])
            line.all_required_items.append(item)
        item.active, item.position = True, position
    packet_changed = printed_before != _packet_as_printed(line, wanted)
    if packet_changed:
        line.packet_updated_at = utcnow()
    db.session.add(line)
    db.session.flush()
    record_audit(
        "service_line.saved",
        actor=actor,
        target_type="service_line",
        target_id=line.id,
        required_items=len(wanted),
        packet_changed=packet_changed,
        fhir_coding=list(fhir_coding) if fhir_coding else None,
    )
    return line
