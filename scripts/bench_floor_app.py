"""The portal as bench-pages serves it: wsgi.py's app with one page more, the portal's
floor.

`/bench/floor` does what every signed-in page of the portal does and nothing else: the
server-side session check, an audit row for the view committed before rendering, and
the shared layout (navigation, unread badge, jobs banner) around one line. The gap
between a portal page and it is that page's own work; the gap between it and the bare
one-row page of bench_bare_app.py is what the portal adds to every page. Only this
script registers the route: the portal itself has no such page.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from flask import Blueprint, render_template  # noqa: E402
from flask_login import current_user, login_required  # noqa: E402
from jinja2 import ChoiceLoader, DictLoader  # noqa: E402

from portal.auditing import record_audit  # noqa: E402
from portal.database import commit_keeping_loaded  # noqa: E402
from wsgi import app  # noqa: E402

FLOOR_TEMPLATE = "bench/floor.html"
floor = Blueprint("bench_floor", __name__)


@floor.get("/bench/floor")
@login_required
def floor_page():
    """The least a signed-in, audited page with the portal's layout does."""
    record_audit("bench.floor_viewed", actor=current_user, target_type="bench")
    commit_keeping_loaded()
    return render_template(FLOOR_TEMPLATE)


app.jinja_env.loader = ChoiceLoader(
    [
        app.jinja_env.loader,
        DictLoader(
            {
                FLOOR_TEMPLATE: "{% extends 'base.html' %}{% block content %}"
                "<p>{{ current_user.full_name }}</p>{% endblock %}"
            }
        ),
    ]
)
app.register_blueprint(floor)
