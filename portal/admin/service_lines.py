"""Creating and editing service lines and their required items."""

from __future__ import annotations

from portal.auditing import record_audit
from portal.extensions import db
from portal.models import ItemKind, RequiredItem, ServiceLine, User


def save_service_line(
    line: ServiceLine,
    *,
    name: str,
    description: str,
    eligibility_criteria: str,
    active: bool,
    required: dict[ItemKind, list[str]],
    actor: User,
) -> ServiceLine:
    """Apply the admin's edit. Items no longer listed are retired, not deleted: referrals
    made while they were required still point at them."""
    line.name, line.description = name, description
    line.eligibility_criteria, line.active = eligibility_criteria, active
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
    db.session.add(line)
    db.session.flush()
    record_audit(
        "service_line.saved",
        actor=actor,
        target_type="service_line",
        target_id=line.id,
        required_items=len(wanted),
    )
    return line
