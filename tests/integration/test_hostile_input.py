"""No input breaks a page: every route of every role, sent what a hostile client sends.

The sweep reads the app's URL map (a new route is covered without editing this file),
fills each path argument with a real value and then with hostile ones, sends hostile
values in every query parameter a page reads, and finds every form on every page the
role can open and sends each of its fields every hostile value, one at a time, plus
repeated, missing and empty fields and bad files. It asserts:
- no response is a server error (500 or above);
- a path argument out of its type (a huge id, NUL in a reference) is a 404;
- a rejected request (4xx) wrote nothing: every table's row count is unchanged;
- no HTML response carries an unescaped script tag that was sent;
- afterwards, no stored text holds NUL or another control character.
It runs on SQLite and PostgreSQL like the rest of the suite.
"""

from __future__ import annotations

import io
import re
from collections import Counter
from dataclasses import dataclass, field
from datetime import date, timedelta

import pytest
from flask import Flask, request
from sqlalchemy import JSON, String, Text, select, text

import portal.query_args
from portal.accounts.services import invite_user, request_password_reset
from portal.accounts.sessions import create_session_row
from portal.clock import utcnow
from portal.extensions import db
from portal.fhir.registry import register_client
from portal.health import HEARTBEAT
from portal.models import (
    AppointmentMode,
    Base,
    ContactMethod,
    Document,
    Holiday,
    JobState,
    OutboxMessage,
    Referral,
    Role,
    SlaClock,
    Status,
    UserSession,
)
from portal.patients.links import sign
from portal.patients.services import Slot, latest_link, send_next_step_link
from portal.referrals.documents import Upload
from portal.referrals.drafts import DraftContent, save_draft
from portal.referrals.duplicates import new_submission_token
from portal.text import refusal_for_text
from tests.fixtures.desk import Desk, make_referral, user
from tests.fixtures.hostile import (
    BAD_FILES,
    DATES,
    INVALID_UTF8,
    NUMBERS,
    PATH_VALUES,
    PDF,
    SCRIPT,
    TEXTS,
    TIMES,
    FoundForm,
    forms_on,
    query_string,
    urlencoded,
)

ROLES = ["anonymous", "patient", "partner", "intake", "clinical", "partner_success", "admin"]
# Requests that would end the sweep's own session; what they do is tested elsewhere.
SESSION_ENDING = {"accounts.sign_out"}
# Parameters any page might read straight from the query string.
GENERIC_PARAMETERS = ["page", "partner", "q", "next", "token", "period", "on"]
# Names url_for() treats as its own, should a page copy the query string into a link.
URL_FOR_PARAMETERS = {
    "_method": "POST",
    "_external": "1",
    "_scheme": "javascript",
    "_anchor": SCRIPT,
}
# Headers the portal reads or stores (sessions keep the User-Agent).
HOSTILE_HEADERS = [
    {"User-Agent": "\x00\u202e<script>alert(1)</script>" + "A" * 10_000},
    {"X-Request-ID": "<script>alert(1)</script>\x01"},
    {"X-Forwarded-For": "\x00, 999.999.999.999"},
    {"HX-Request": "true", "HX-Target": "queue-results", "HX-Current-URL": "\x00"},
    {"If-None-Match": "\x00" * 1000},
    {"Accept-Language": "\x00;q=NaN"},
]
JSON_VALUES = [5, [1, 2], {"a": 1}, True, None, "\x00"]
CHOICE_KINDS = {"select", "radio", "checkbox", "hidden", "number", "date", "time", "button"}
# What rejected requests may still write, and why:
# - a refused password or code counts towards throttling (sign_in_attempt);
# - the session row notes activity (user_session.last_seen_at is an UPDATE, not a row).
MAY_WRITE_WHEN_REFUSED = {"sign_in_attempt"}
# The longest text any form field takes (clinical context).
LONGEST_TEXT_FIELD = 5000


@dataclass
class World:
    """Real values for every path argument, and pages worth crawling for forms."""

    path_values: dict[str, object]
    patient_token: str
    invitation_token: str
    extra_pages: list[str]
    date_of_birth: dict[str, str]


@dataclass
class Sweep:
    client: object
    role: str
    world: World
    requests: int = 0
    statuses: Counter = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    parameters_read: dict[str, set[str]] = field(default_factory=dict)

    def send(self, method: str, path: str, *, expect_404: bool = False, **kwargs) -> str:
        before = row_counts() if method != "GET" else None
        response = self.client.open(path, method=method, **kwargs)
        self.requests += 1
        self.statuses[response.status_code] += 1
        body = response.get_data()
        label = f"{self.role} {method} {path[:120]} {str(kwargs.get('data', ''))[:120]!r}"
        if response.status_code >= 500:
            self.failures.append(f"{response.status_code}: {label}")
        elif expect_404 and response.status_code != 404:
            self.failures.append(f"expected 404, got {response.status_code}: {label}")
        if response.status_code == 200 and b"There is a problem" in body:
            self.failures.append(f"a refused form answered 200, not 422: {label}")
        if "html" in response.content_type and SCRIPT.encode() in body:
            self.failures.append(f"unescaped script tag echoed: {label}")
        if before is not None and 400 <= response.status_code < 500:
            changed = {
                table
                for table, count in row_counts().items()
                if count != before[table] and table not in MAY_WRITE_WHEN_REFUSED
            }
            if changed:
                self.failures.append(
                    f"{response.status_code} but wrote to {sorted(changed)}: {label}"
                )
        return body.decode("utf-8", "replace") if response.status_code == 200 else ""


def stored_control_characters() -> list[str]:
    """Every stored text value holding what no text field may hold (NUL, other control
    characters, bidirectional overrides), or longer than its column (SQLite keeps what
    PostgreSQL would refuse), or in a JSON column (a draft's fields) longer than any form
    field allows: none may reach the database, on either."""
    found = []
    with db.engine.connect() as connection:
        for table in Base.metadata.sorted_tables:
            columns = [c for c in table.columns if isinstance(c.type, String | Text | JSON)]
            if not columns:
                continue
            for row in connection.execute(select(*columns)):
                for column, value in zip(columns, row, strict=True):
                    limit = LONGEST_TEXT_FIELD if isinstance(column.type, JSON) else None
                    for stored in texts_in(value):
                        if refusal_for_text(
                            stored, max_length=limit or column.type.length, multiline=True
                        ):
                            found.append(f"{table.name}.{column.name}: {stored[:60]!r}")
    return found


def texts_in(value: object) -> list[str]:
    """The strings a stored value holds: itself, or a JSON value's keys and values."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for pair in value.items() for item in pair for text in texts_in(item)]
    if isinstance(value, list):
        return [text for item in value for text in texts_in(item)]
    return []


def row_counts() -> dict[str, int]:
    tables = sorted(Base.metadata.tables)
    statement = " UNION ALL ".join(
        # Table names from the models, never from a request.
        f"SELECT '{name}' AS name, count(*) AS n FROM {name}"  # noqa: S608
        for name in tables
    )
    with db.engine.connect() as connection:
        return {name: n for name, n in connection.execute(text(statement))}


# --- The world ----------------------------------------------------------------------------


def build_world(desk: Desk) -> World:
    intake = user(desk.intake)
    main = make_referral(desk, Status.SUBMITTED, service_line_id=desk.cardio_id)
    needs_info = make_referral(desk, Status.NEEDS_INFO)
    accepted = make_referral(desk, Status.ACCEPTED)
    scheduled = make_referral(desk, Status.SCHEDULED)
    settled = make_referral(desk, Status.DECLINED)  # the partner's page offers a rating
    main_row = db.session.scalar(select(Referral).filter_by(reference=main))
    accepted_row = db.session.scalar(select(Referral).filter_by(reference=accepted))
    send_next_step_link(
        accepted_row,
        intake,
        expected_version=None,
        via=ContactMethod.EMAIL,
        slots=[Slot(utcnow() + timedelta(days=3), AppointmentMode.VIDEO)],
    )
    holiday = Holiday(day=date(2026, 12, 25), name="Christmas Day")
    db.session.add(holiday)
    invitation = invite_user(
        email="new.person@desk.example",
        full_name="New Person",
        role=Role.INTAKE,
        partner=None,
        invited_by=user(desk.admin),
    )
    request_password_reset(desk.partner_a2, "127.0.0.9")
    draft = save_draft(
        None,
        DraftContent(
            {"patient_first_name": "Zephyrine", "service_line": str(desk.cardio_id)},
            [Upload("labs.pdf", "application/pdf", PDF)],
            {},
        ),
        user(desk.partner_a),
    )
    create_session_row(intake, authenticated=True, user_agent="other", address="10.0.0.1")
    fhir_client, _secret = register_client(
        main_row.partner, "Alpha EHR", ["system/Task.rs"], created_by=None, with_secret=True
    )
    # A live jobs process, so /readyz answers 200 for the whole sweep (its 503 when the
    # jobs are stale is tests/integration/test_health.py's business).
    db.session.add(JobState(name=HEARTBEAT, value={}, updated_at=utcnow() + timedelta(hours=1)))
    db.session.flush()
    reset_body = db.session.scalars(
        select(OutboxMessage.body).order_by(OutboxMessage.id.desc())
    ).first()
    reset_token = re.search(r"token=([\w.-]+)", reset_body).group(1)
    session_id = db.session.scalar(select(UserSession.id).where(UserSession.user_id == intake.id))
    path_values = {
        "reference": main,
        "document_id": db.session.scalar(
            select(Document.id).where(Document.referral_id == main_row.id)
        ),
        "clock_id": db.session.scalar(
            select(SlaClock.id).where(SlaClock.referral_id == main_row.id)
        ),
        "partner_id": desk.partner_a_id,
        "line_id": desk.cardio_id,
        "user_id": intake.id,
        "session_id": session_id,
        "holiday_id": holiday.id,
        "fhir_client_id": fhir_client.id,
        "resource_id": main,  # /fhir/Task/<resource_id> and the other FHIR reads
        "draft_id": draft.id,
        "message_id": db.session.scalar(select(OutboxMessage.id).order_by(OutboxMessage.id)),
        "action": "note",
        "name": "summary",
    }
    link = latest_link(accepted_row)
    world = World(
        path_values=path_values,
        patient_token=sign(link),
        invitation_token=invitation.token,
        extra_pages=[f"/referrals/{ref}" for ref in (needs_info, accepted, scheduled, settled)]
        + [f"/referrals/{settled}/rating?score=4"]
        + [f"/password/reset?token={reset_token}"]
        # GET /referrals/new redirects to the form with its token: crawl that form.
        + [f"/referrals/new?form={new_submission_token()}"],
        date_of_birth={"day": "14", "month": "3", "year": "1961"},
    )
    db.session.commit()
    return world


def client_for_role(role: str, app: Flask, desk: Desk, client_for, world: World):
    if role in ("anonymous", "patient"):
        from tests.conftest import PortalClient

        app.test_client_class = PortalClient
        client = app.test_client()
        if role == "patient":
            response = client.post(f"/p/{world.patient_token}/verify", data=world.date_of_birth)
            assert response.status_code == 303, response.get_data(as_text=True)[:500]
        return client
    email = {
        "partner": desk.partner_a,
        "intake": desk.intake,
        "clinical": desk.clinical,
        "partner_success": desk.success,
        "admin": desk.admin,
    }[role]
    return client_for(email)


# --- URLs from the URL map -------------------------------------------------------------


def rule_paths(app: Flask, world: World):
    """(endpoint, methods, valid path, {argument: converter name}) for every rule."""
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint in SESSION_ENDING:
            continue
        values = {}
        for argument in rule.arguments:
            if argument == "token":
                values[argument] = (
                    world.patient_token
                    if rule.endpoint.startswith("patients.")
                    else world.invitation_token
                )
            elif argument in world.path_values:
                values[argument] = world.path_values[argument]
            else:
                pytest.fail(
                    f"{rule.rule}: the hostile sweep has no valid value for <{argument}>; "
                    "add one to build_world"
                )
        path = rule.build(values, append_unknown=False)[1]
        converters = {
            name: type(converter).__name__ for name, converter in rule._converters.items()
        }
        methods = sorted(rule.methods - {"HEAD", "OPTIONS"})
        yield rule, methods, path, values, converters


def hostile_path(rule, values: dict, argument: str, hostile: str) -> str:
    """The rule's path with real values, except `argument`, which is `hostile` as sent."""
    path = rule.rule
    for name, value in {**values, argument: hostile}.items():
        path = re.sub(rf"<(?:\w+:)?{name}>", lambda _m, v=value: str(v), path)
    return path


# --- The sweep ------------------------------------------------------------------------------


def sweep_paths(sweep: Sweep, app: Flask) -> list[str]:
    """Hostile path arguments on every rule; returns the valid GET pages to crawl."""
    pages = []
    for rule, methods, path, values, converters in rule_paths(app, sweep.world):
        for method in methods:
            for argument in rule.arguments:
                # A token of the right shape is the link page's to judge (404 or 410).
                typed = converters.get(argument) in {"IdConverter", "ReferenceConverter"}
                for hostile in PATH_VALUES:
                    sweep.send(
                        method, hostile_path(rule, values, argument, hostile), expect_404=typed
                    )
            if method == "GET":
                pages.append(path)
    return pages


def sweep_queries(sweep: Sweep, pages: list[str]) -> None:
    """Every parameter a page was seen to read, then the usual suspects, made hostile."""
    for page in pages:
        path = page.split("?")[0]
        names = set(sweep.parameters_read.get(path, set())) | set(GENERIC_PARAMETERS)
        for name in sorted(names):
            values = (
                [*NUMBERS, *DATES, *TEXTS[:10], *INVALID_UTF8]
                if name in sweep.parameters_read.get(path, set())
                else [NUMBERS[0], "\x00", SCRIPT]
            )
            for value in values:
                sweep.send("GET", f"{path}?{query_string([(name, value)])}")
            sweep.send("GET", f"{path}?{query_string([(name, '1'), (name, '2')])}")
        sweep.send("GET", f"{path}?{query_string(list(URL_FOR_PARAMETERS.items()))}")
        for headers in HOSTILE_HEADERS:
            sweep.send("GET", path, headers=headers)


def crawl_forms(sweep: Sweep, pages: list[str]) -> list[FoundForm]:
    found: dict[tuple, FoundForm] = {}
    for page in [*pages, *sweep.world.extra_pages]:
        html = sweep.send("GET", page)
        for form in forms_on(page.split("?")[0], html):
            found.setdefault(form.key(), form)
    return [f for f in found.values() if not _ends_session(f)]


def _ends_session(form: FoundForm) -> bool:
    return form.action.rstrip("/") == "/sign-out"


def values_for(kind: str) -> list[str | bytes]:
    """Every hostile value suits a text field; a choice, number or date gets the ones
    that reach its parsing (the rest are refused as "not a choice" the same way)."""
    if kind in CHOICE_KINDS:
        return [*NUMBERS[:5], "NaN", *DATES[:3], TIMES[0], "\x00", SCRIPT, "A" * 100_000, b"\xff"]
    return [*TEXTS, NUMBERS[0], *INVALID_UTF8[:2]]


def submit(sweep: Sweep, form: FoundForm, pairs, files=()) -> None:
    if form.method == "get":
        sweep.send("GET", f"{form.action}?{query_string(pairs)}")
    elif form.multipart or files:
        data = [(n, v.decode("latin-1") if isinstance(v, bytes) else v) for n, v in pairs]
        data_dict: dict = {}
        for name, value in data:
            data_dict.setdefault(name, []).append(value)
        for name, (filename, content) in files:
            data_dict.setdefault(name, []).append((io.BytesIO(content), filename))
        sweep.send("POST", form.action, data=data_dict, content_type="multipart/form-data")
    else:
        sweep.send(
            "POST",
            form.action,
            data=urlencoded(pairs),
            content_type="application/x-www-form-urlencoded",
        )


def sweep_forms(sweep: Sweep, forms: list[FoundForm]) -> None:
    for form in forms:
        # The page's CSRF token may be stale by now (signing a link in starts a new
        # browser session); PortalClient sends a fresh one in the header instead.
        defaults = [(n, v) for n, v in form.fields if n != "csrf_token"]
        names = [n for n, _ in defaults]
        for name in dict.fromkeys(names):
            kind = form.kinds.get(name, "text")
            for value in values_for(kind):
                pairs = [(n, value if n == name else v) for n, v in defaults]
                submit(sweep, form, pairs)
            # The field twice, the hostile copy first; and the field left out.
            submit(sweep, form, [(name, "\x00"), *defaults])
            submit(sweep, form, [(n, v) for n, v in defaults if n != name])
        submit(sweep, form, [])
        if form.method == "post":
            for value in JSON_VALUES:
                sweep.send("POST", form.action, json={name: value for name in names})
        for file_field in form.files:
            for bad_file in BAD_FILES:
                submit(sweep, form, defaults, files=[(file_field, bad_file)])


@pytest.mark.parametrize("role", ROLES)
def test_no_hostile_input_breaks_a_page_or_writes_when_refused(
    app, desk, client_for, monkeypatch, role
):
    with app.app_context():
        world = build_world(desk)
    client = client_for_role(role, app, desk, client_for, world)
    sweep = Sweep(client, role, world)

    read = portal.query_args._raw

    def recording_raw(name: str):
        sweep.parameters_read.setdefault(request.path, set()).add(name)
        return read(name)

    monkeypatch.setattr(portal.query_args, "_raw", recording_raw)

    with app.app_context():
        pages = sweep_paths(sweep, app)
        forms = crawl_forms(sweep, pages)
        sweep_queries(sweep, pages)
        sweep_forms(sweep, forms)
        # The sweep's own session survived: it tested the role, not the sign-in page.
        if role not in ("anonymous", "patient"):
            assert client.get("/account").status_code == 200
        sweep.failures.extend(f"stored: {value}" for value in stored_control_characters())

    assert not sweep.failures, "\n".join(sweep.failures[:60])
    assert sweep.requests >= 300, sweep.requests
    assert sum(n for code, n in sweep.statuses.items() if 400 <= code < 500) > 0
    print(f"{role}: {sweep.requests} hostile requests, {len(forms)} forms, {sweep.statuses}")
