"""The referral packet page: read beside the referral form, printed on one page."""

from __future__ import annotations

from flask import Blueprint, abort, render_template
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from portal.accounts.sessions import roles_required
from portal.extensions import db
from portal.models import Role, ServiceLine
from portal.notifications.outbox import portal_url
from portal.service_lines.packets import text_blocks, what_happens_after

bp = Blueprint("packets", __name__, url_prefix="/service-lines")


@bp.get("/<id:line_id>/packet")
@roles_required(*Role)
def packet(line_id: int):
    """An active service line's referral packet, for referring offices and staff alike."""
    line = db.session.scalar(
        select(ServiceLine)
        .where(ServiceLine.id == line_id, ServiceLine.active.is_(True))
        .options(selectinload(ServiceLine.required_items))
    )
    if line is None:
        abort(404)
    return render_template(
        "packets/packet.html",
        line=line,
        treats=text_blocks(line.packet_treats),
        how_to_submit=text_blocks(line.packet_how_to_submit),
        submit_address=portal_url("referrals.new"),
        promises=what_happens_after(),
        after=text_blocks(line.packet_after),
        contacts=text_blocks(line.packet_contacts),
    )
