"""The staff queue page and its htmx-refreshed results."""

from __future__ import annotations

from flask import Blueprint, current_app, render_template
from flask_login import current_user
from htmx_flask import request
from sqlalchemy import select

from portal.accounts.sessions import roles_required
from portal.auditing import record_audit
from portal.database import commit_keeping_loaded
from portal.extensions import db
from portal.intake.queue import QueueFilters, queue_page
from portal.models import STAFF_ROLES, Partner, ServiceLine, Status, Urgency
from portal.query_args import page_arg
from portal.sla.views import clock_views

bp = Blueprint("intake", __name__)


@bp.get("/queue")
@roles_required(*STAFF_ROLES)
def queue():
    """Referrals to work, urgent first then oldest; filters refresh the table in place."""
    filters = QueueFilters.from_request()
    page = page_arg()
    # Which filters, not what was typed: the search box takes a reference, and whatever
    # else someone types there (a patient's name) must never reach the audit log.
    record_audit(
        "queue.viewed",
        actor=current_user,
        target_type="queue",
        status=filters.status,
        urgency=filters.urgency or None,
        sla=filters.sla or None,
        service_line_id=filters.service_line_id,
        partner_id=filters.partner_id,
        searched=bool(filters.search),
        page=page,
    )
    commit_keeping_loaded()  # the signed-in user stays loaded for the page
    referrals, has_next = queue_page(filters, page, current_app.config["QUEUE_PAGE_SIZE"])
    context = {
        "clocks": clock_views(referrals),
        "referrals": referrals,
        "filters": filters,
        "page": page,
        "has_next": has_next,
    }
    if request.htmx and request.htmx.target == "queue-results":
        return render_template("intake/_queue_results.html", **context)
    return render_template(
        "intake/queue.html",
        statuses=list(Status),
        urgencies=list(Urgency),
        # The filters' choices: ids and names are all they show.
        service_lines=db.session.execute(
            select(ServiceLine.id, ServiceLine.name).order_by(ServiceLine.name)
        ).all(),
        partners=db.session.execute(select(Partner.id, Partner.name).order_by(Partner.name)).all(),
        **context,
    )
