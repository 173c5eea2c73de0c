"""Jinja filters and globals shared by every template."""

from __future__ import annotations

from datetime import datetime

from flask import Flask
from flask_babel import get_locale

from portal import formatting
from portal.clock import utcnow
from portal.models import Role, Status
from portal.phones import display_phone, tel_uri


def format_age(value: datetime | None) -> str:
    """'3 h ago', '2 d ago': how long something has been waiting."""
    if value is None:
        return ""
    seconds = max(0, int((utcnow() - value).total_seconds()))
    if seconds < 60:
        return "just now"
    if seconds < 3600:
        return f"{seconds // 60} min ago"
    if seconds < 86400:
        return f"{seconds // 3600} h ago"
    return f"{seconds // 86400} d ago"


BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Chromium/", "Chromium"),
    ("Safari/", "Safari"),
)
SYSTEMS = (
    ("iPhone", "iPhone"),
    ("iPad", "iPad"),
    ("Android", "Android"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def describe_device(user_agent: str | None) -> str:
    """'Chrome on Windows': enough for someone to recognise their own device."""
    if not user_agent:
        return "Unknown device"
    browser = next((name for marker, name in BROWSERS if marker in user_agent), None)
    system = next((name for marker, name in SYSTEMS if marker in user_agent), None)
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or user_agent[:60]


def install_template_helpers(app: Flask) -> None:
    # Dates, times and numbers: portal/formatting.py, in the request's locale.
    app.jinja_env.filters.update(
        datetime=formatting.format_moment,
        day=formatting.format_day,
        plain_day=formatting.format_plain_day,
        short_day=formatting.format_short_day,
        month=formatting.format_month,
        visit_when=formatting.format_visit_when,
        clock=formatting.format_clock,
        number=formatting.format_number,
        percent=formatting.format_percent,
        hours=formatting.format_hours,
    )
    app.jinja_env.filters["age"] = format_age
    app.jinja_env.filters["device"] = describe_device
    # Phones are stored in E.164: `number|phone_display` reads "(202) 555-0143" and
    # `number|tel_uri` is the link's "tel:+12025550143" (_macros/phone.html has both).
    app.jinja_env.filters["phone_display"] = display_phone
    app.jinja_env.filters["tel_uri"] = tel_uri
    app.jinja_env.globals.update(
        Role=Role, Status=Status, now=utcnow, page_language=lambda: get_locale().language
    )
