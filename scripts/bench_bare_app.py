"""The bare reference for scripts/bench-pages.sh: Flask and SQLAlchemy, nothing more.

    DATABASE_URL=... gunicorn -c gunicorn.conf.py --pythonpath scripts bench_bare_app:app

Three pages, on the portal's own database: `/hello` answers "hello"; `/one/<id>` reads
one referral by primary key and renders ten of its fields; `/fifty` reads the first 50
referrals (a list page's most) and renders them as a table. No sign-in, no audit, no
layout: what any page costs before the portal adds its own work. The engine is the
portal's (portal.database.build_engine: SQLite's pragmas, PostgreSQL's pool and
pre-ping), so a difference in the figures is page code, not connection handling.
"""

from __future__ import annotations

import os
import sys
from datetime import date, datetime
from pathlib import Path

from flask import Flask, abort, render_template
from jinja2 import DictLoader
from sqlalchemy import Date, DateTime, String, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from portal.database import build_engine  # noqa: E402

# Rendered from the loader (compiled once per worker), never from a string per request.
TEMPLATES = {
    "layout.html": (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        "<title>{% block title %}{% endblock %}</title></head>"
        "<body><main>{% block content %}{% endblock %}</main></body></html>"
    ),
    "one.html": """{% extends "layout.html" %}
{% block title %}{{ referral.reference }}{% endblock %}
{% block content %}
<h1>{{ referral.patient_first_name }} {{ referral.patient_last_name }}</h1>
<dl>
  <dt>Reference</dt><dd>{{ referral.reference }}</dd>
  <dt>Status</dt><dd>{{ referral.status }}</dd>
  <dt>Urgency</dt><dd>{{ referral.urgency }}</dd>
  <dt>Date of birth</dt><dd>{{ referral.patient_date_of_birth.isoformat() }}</dd>
  <dt>Referred by</dt><dd>{{ referral.referring_provider_name }}</dd>
  <dt>Reason</dt><dd>{{ referral.reason }}</dd>
  <dt>Submitted</dt><dd>{{ referral.submitted_at.strftime("%b %d, %Y %H:%M") }}</dd>
  <dt>Updated</dt><dd>{{ referral.updated_at.strftime("%b %d, %Y %H:%M") }}</dd>
</dl>
{% endblock %}""",
    "fifty.html": """{% extends "layout.html" %}
{% block title %}Referrals{% endblock %}
{% block content %}
<table>
  <thead><tr><th>Reference</th><th>Patient</th><th>Date of birth</th><th>Status</th>
  <th>Urgency</th><th>Referred by</th><th>Reason</th><th>Submitted</th></tr></thead>
  <tbody>
  {% for referral in referrals %}
  <tr><td><a href="/one/{{ referral.id }}">{{ referral.reference }}</a></td>
    <td>{{ referral.patient_first_name }} {{ referral.patient_last_name }}</td>
    <td>{{ referral.patient_date_of_birth.isoformat() }}</td>
    <td>{{ referral.status }}</td><td>{{ referral.urgency }}</td>
    <td>{{ referral.referring_provider_name }}</td><td>{{ referral.reason }}</td>
    <td>{{ referral.submitted_at.strftime("%b %d, %Y %H:%M") }}</td></tr>
  {% endfor %}
  </tbody>
</table>
{% endblock %}""",
}


class Base(DeclarativeBase):
    pass


class Referral(Base):
    """Ten columns of the portal's referral table, mapped plainly."""

    __tablename__ = "referral"

    id: Mapped[int] = mapped_column(primary_key=True)
    reference: Mapped[str] = mapped_column(String(11))
    status: Mapped[str] = mapped_column(String(40))
    urgency: Mapped[str] = mapped_column(String(20))
    patient_first_name: Mapped[str] = mapped_column(String(100))
    patient_last_name: Mapped[str] = mapped_column(String(100))
    patient_date_of_birth: Mapped[date] = mapped_column(Date)
    referring_provider_name: Mapped[str] = mapped_column(String(120))
    reason: Mapped[str] = mapped_column(String(500))
    submitted_at: Mapped[datetime] = mapped_column(DateTime)
    updated_at: Mapped[datetime] = mapped_column(DateTime)


def create_bare_app(database_url: str) -> Flask:
    """The three reference pages over `database_url`."""
    app = Flask(__name__)
    app.jinja_loader = DictLoader(TEMPLATES)
    engine = build_engine(database_url)

    @app.get("/hello")
    def hello():
        """The framework alone."""
        return "hello"

    @app.get("/one/<int:referral_id>")
    def one(referral_id: int):
        """One row by primary key, ten fields rendered."""
        with Session(engine) as session:
            referral = session.get(Referral, referral_id)
            if referral is None:
                abort(404)
            return render_template("one.html", referral=referral)

    @app.get("/fifty")
    def fifty():
        """Fifty rows, a list page's most, rendered as a table."""
        with Session(engine) as session:
            referrals = session.scalars(select(Referral).order_by(Referral.id).limit(50)).all()
            return render_template("fifty.html", referrals=referrals)

    return app


app = create_bare_app(os.environ["DATABASE_URL"])
