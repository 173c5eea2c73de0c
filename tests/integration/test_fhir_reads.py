"""The FHIR reads: the status table, a referral's Task, ServiceRequest, Communications
and Appointment as its referring office sees them, Task search and paging, ETags,
tenancy, the CapabilityStatement, statement counts and hostile search parameters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.codesystem import CodeSystem
from fhir.resources.R4B.communication import Communication
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task
from sqlalchemy import select

from portal.clock import frozen_at, utcnow
from portal.extensions import db
from portal.fhir.clients import issue_token
from portal.fhir.mapping import (
    BUSINESS_STATUS_SYSTEM,
    COMMUNICATION_CATEGORY_SYSTEM,
    STATUS_TABLE,
)
from portal.fhir.registry import register_client
from portal.models import (
    FHIR_SCOPES,
    AuditEntry,
    ContactMethod,
    OutreachResult,
    Partner,
    Referral,
    ServiceLine,
    Status,
    Urgency,
)
from portal.referrals import services
from portal.referrals.actions import cancel_appointment
from portal.referrals.needs_info import request_information
from tests.fixtures.desk import make_referral, user

READS = (
    "system/Task.rs",
    "system/ServiceRequest.rs",
    "system/Communication.rs",
    "system/Appointment.rs",
)
TASK_STATUSES = {
    "draft", "requested", "received", "accepted", "rejected", "ready", "cancelled",
    "in-progress", "on-hold", "failed", "completed", "entered-in-error",
}  # fmt: skip
MISSING = "R-0000-0000"


@pytest.fixture
def fhir(app, desk):
    """A token for partner A's EHR (every read scope), and a way to GET with it."""
    app.config["FHIR_CALLS_PER_MINUTE"] = 100_000
    http = app.test_client()
    tokens = {}

    def token_for(partner_id: int, scopes=READS) -> str:
        with app.app_context():
            partner = db.session.get(Partner, partner_id)
            client, _ = register_client(partner, "EHR", list(scopes), created_by=None)
            token, _ = issue_token(client, list(scopes))
            db.session.commit()
        return token

    tokens["a"] = token_for(desk.partner_a_id)

    class Fhir:
        token = staticmethod(token_for)

        def get(self, path, token=None, headers=None, **kwargs):
            return http.get(
                path,
                headers={"Authorization": f"Bearer {token or tokens['a']}", **(headers or {})},
                **kwargs,
            )

        def json(self, path, status=200, **kwargs):
            response = self.get(path, **kwargs)
            assert response.status_code == status, response.get_data(as_text=True)[:800]
            assert response.mimetype == "application/fhir+json"
            return response.get_json()

    return Fhir()


def referral_row(reference: str) -> Referral:
    return db.session.scalar(select(Referral).where(Referral.reference == reference))


# --- The status table ---------------------------------------------------------------


def test_every_status_is_in_the_one_table_with_a_valid_task_status():
    assert set(STATUS_TABLE) == set(Status)
    assert {task_status for task_status, _ in STATUS_TABLE.values()} <= TASK_STATUSES
    codes = [code for _, code in STATUS_TABLE.values()]
    assert len(codes) == len(set(codes))
    assert STATUS_TABLE[Status.SUBMITTED][0] == "requested"
    assert STATUS_TABLE[Status.IN_REVIEW][0] == "received"
    assert STATUS_TABLE[Status.NEEDS_INFO] == ("on-hold", "needs-info")
    assert STATUS_TABLE[Status.SCHEDULED][0] == "in-progress"
    assert STATUS_TABLE[Status.NO_SHOW][0] == STATUS_TABLE[Status.UNREACHABLE][0] == "failed"
    assert STATUS_TABLE[Status.DECLINED][0] == STATUS_TABLE[Status.REDIRECTED][0] == "rejected"
    assert STATUS_TABLE[Status.WITHDRAWN][0] == "cancelled"


def test_the_business_status_code_system_is_published_complete(app, client):
    response = client.get("/fhir/CodeSystem/referral-business-status")  # no token needed
    assert response.status_code == 200
    system = response.get_json()
    CodeSystem.model_validate(system)
    assert system["url"] == BUSINESS_STATUS_SYSTEM
    assert system["url"].startswith(app.config["PORTAL_BASE_URL"].rstrip("/") + "/fhir/")
    assert system["content"] == "complete"
    assert {c["code"] for c in system["concept"]} == {code for _, code in STATUS_TABLE.values()}
    category = client.get("/fhir/CodeSystem/referral-communication-category").get_json()
    assert category["url"] == COMMUNICATION_CATEGORY_SYSTEM
    for other in ("message-events", "consent-kinds", "message-tags"):
        assert client.get(f"/fhir/CodeSystem/{other}").status_code == 200
    missing = client.get("/fhir/CodeSystem/nope")
    assert missing.status_code == 404
    OperationOutcome.model_validate(missing.get_json())


# --- A referral in every status, built by the real services --------------------------


def test_task_service_request_and_appointment_for_every_status(app, desk, fhir):
    with app.app_context():
        references = {status: make_referral(desk, status) for status in Status}
    for status, reference in references.items():
        task = fhir.json(f"/fhir/Task/{reference}")
        Task.model_validate(task)
        task_status, code = STATUS_TABLE[status]
        assert task["id"] == reference
        assert task["status"] == task_status, status
        assert task["businessStatus"]["coding"][0] == {
            "system": BUSINESS_STATUS_SYSTEM,
            "code": code,
            "display": status.label,
        }
        assert task["focus"] == task["basedOn"][0] == {"reference": f"ServiceRequest/{reference}"}
        assert task["for"] == {"reference": "#patient"}
        assert task["requester"] == {"display": "Alpha Primary Care"}
        assert task["owner"] == {"display": app.config["PRACTICE_NAME"]}
        with app.app_context():
            row = referral_row(reference)
            assert task["meta"]["versionId"] == str(row.version)
            assert task["lastModified"] == task["meta"]["lastUpdated"]
            # To the microsecond, as stored: a poll "gt" it misses nothing.
            assert datetime.fromisoformat(task["lastModified"]) == row.updated_at
        outputs = {o["type"]["text"]: o for o in task.get("output", [])}
        has_visit = status in (Status.SCHEDULED, Status.COMPLETED, Status.NO_SHOW)
        assert ("Appointment" in outputs) is has_visit, status
        appointment = fhir.get(f"/fhir/Appointment/{reference}")
        if has_visit:
            assert outputs["Appointment"]["valueReference"] == {
                "reference": f"Appointment/{reference}"
            }
            body = appointment.get_json()
            Appointment.model_validate(body)
            assert (
                body["status"]
                == {
                    Status.SCHEDULED: "booked",
                    Status.COMPLETED: "fulfilled",
                    Status.NO_SHOW: "noshow",
                }[status]
            )
            with app.app_context():
                start = referral_row(reference).appointment_at
            assert body["start"] == start.isoformat(timespec="seconds").replace("+00:00", "Z")
            assert body["participant"][0]["actor"] == {"reference": "#patient"}
        else:
            assert appointment.status_code == 404
        if status is Status.DECLINED:
            assert task["statusReason"]["text"] == "Not eligible"
        if status is Status.REDIRECTED:
            assert "Pulmonology" in task["statusReason"]["text"]
            assert outputs["Suggested service"]["valueString"] == "Pulmonology"

        service_request = fhir.json(f"/fhir/ServiceRequest/{reference}")
        ServiceRequest.model_validate(service_request)
        assert service_request["status"] == (
            "completed"
            if status is Status.COMPLETED
            else "revoked"
            if status.is_final
            else "active"
        )
        assert service_request["intent"] == "order"
        assert service_request["priority"] == "routine"
        assert service_request["reasonCode"] == [{"text": "Snoring and daytime sleepiness"}]
        assert service_request["note"] == [{"text": "BMI 31, STOP-BANG 5"}]
        patient, practitioner = service_request["contained"]
        assert patient["name"] == [{"family": "Quillfeather", "given": ["Zephyrine"]}]
        assert patient["birthDate"] == "1961-03-14"
        assert {"system": "phone", "value": "+12025550143", "rank": 1} in patient["telecom"]
        assert practitioner["identifier"] == [
            {"system": "http://hl7.org/fhir/sid/us-npi", "value": "1234567893"}
        ]
        communications = fhir.json(f"/fhir/Communication?based-on=ServiceRequest/{reference}")
        Bundle.model_validate(communications)
        for entry in communications["entry"]:
            Communication.model_validate(entry["resource"])


def test_service_request_code_is_the_service_lines_coding(app, desk, fhir):
    with app.app_context():
        line = db.session.get(ServiceLine, desk.sleep_id)
        line.fhir_system, line.fhir_code = "http://snomed.info/sct", "306206005"
        db.session.commit()
        reference = make_referral(desk, Status.SUBMITTED, urgency=Urgency.URGENT)
    service_request = fhir.json(f"/fhir/ServiceRequest/{reference}")
    assert service_request["code"] == {
        "coding": [
            {"system": "http://snomed.info/sct", "code": "306206005", "display": "Sleep medicine"}
        ],
        "text": "Sleep medicine",
    }
    assert service_request["priority"] == "urgent"
    assert fhir.json(f"/fhir/Task/{reference}")["priority"] == "urgent"


def test_communications_are_the_partners_timeline_and_the_questions(app, desk, fhir):
    with app.app_context():
        reference = make_referral(desk, Status.IN_REVIEW)
        referral = referral_row(reference)
        intake = user(desk.intake)
        request_information(
            referral,
            intake,
            expected_version=None,
            required_item_ids=[],
            other_documents=["Sleep study"],
            other_questions=["Current CPAP use?"],
            message="Please send the sleep study.",
        )
        services.add_staff_note(referral, intake, expected_version=None, note="Staff only words")
        services.share_follow_up(
            referral, user(desk.clinical), expected_version=None, message="Seen by Dr. Park"
        )
        db.session.commit()
        partner = user(desk.partner_a)
        timeline = services.timeline(referral, partner)
        headlines = [services.event_headline(event, partner) for event in reversed(timeline)]
    bundle = fhir.json(f"/fhir/Communication?based-on=ServiceRequest/{reference}")
    Bundle.model_validate(bundle)
    resources = [entry["resource"] for entry in bundle["entry"]]
    assert bundle["total"] == len(resources)
    updates = [r for r in resources if r["category"][0]["coding"][0]["code"] == "update"]
    questions = [r for r in resources if r["category"][0]["coding"][0]["code"] == "needs-info"]
    # Exactly the partner's timeline, oldest first, in the partner's words.
    assert [r["payload"][0]["contentString"] for r in updates] == headlines
    assert "Follow-up note: Seen by Dr. Park" in headlines
    assert "Staff only words" not in str(bundle)
    (question,) = questions
    assert question["status"] == "in-progress"
    assert question["basedOn"] == [{"reference": f"ServiceRequest/{reference}"}]
    assert question["payload"][0] == {"contentString": "Please send the sleep study."}
    items = question["payload"][1:]
    assert [item["contentString"] for item in items] == ["Sleep study", "Current CPAP use?"]
    assert all(item["id"].startswith("item-") for item in items)
    notes = [note["text"] for note in question["note"]]
    assert notes[0].startswith(f"{items[0]['id']}: a document")
    assert notes[1].startswith(f"{items[1]['id']}: a written answer")
    assert all(note.endswith("not received yet.") for note in notes)
    for resource in resources:
        Communication.model_validate(resource)
        assert resource["id"].startswith(reference + "-")
        assert "sent" in resource
    # A referral of another partner, or none: an empty searchset, alike.
    with app.app_context():
        theirs = make_referral(desk, Status.SUBMITTED, partner_email=desk.partner_b)
    for other in (theirs, MISSING):
        empty = fhir.json(f"/fhir/Communication?based-on=ServiceRequest/{other}")
        assert empty["total"] == 0 and empty["entry"] == []


# --- Tenancy, ETags, audit ------------------------------------------------------------


def test_another_partners_ids_answer_exactly_like_missing_ones(app, desk, fhir):
    with app.app_context():
        theirs = make_referral(desk, Status.SCHEDULED, partner_email=desk.partner_b)
        ours = make_referral(desk, Status.SCHEDULED)
    for kind in ("Task", "ServiceRequest", "Appointment"):
        foreign = fhir.get(f"/fhir/{kind}/{theirs}")
        missing = fhir.get(f"/fhir/{kind}/{MISSING}")
        malformed = fhir.get(f"/fhir/{kind}/not-a-reference")
        assert foreign.status_code == missing.status_code == malformed.status_code == 404
        assert foreign.get_data() == missing.get_data() == malformed.get_data()
        same = {name for name, _ in foreign.headers if name != "X-Request-ID"}
        assert {n: foreign.headers[n] for n in same} == {n: missing.headers[n] for n in same}
        OperationOutcome.model_validate(foreign.get_json())
        assert fhir.get(f"/fhir/{kind}/{ours}").status_code == 200
    # Partner B's own client sees it.
    token_b = fhir.token(desk.partner_b_id)
    assert fhir.get(f"/fhir/Task/{theirs}", token=token_b).status_code == 200
    assert fhir.get(f"/fhir/Task/{ours}", token=token_b).status_code == 404
    found = fhir.json("/fhir/Task")
    assert [e["resource"]["id"] for e in found["entry"]] == [ours]


def test_reads_carry_etags_and_answer_304_until_the_referral_changes(app, desk, fhir):
    with app.app_context():
        reference = make_referral(desk, Status.SUBMITTED)
    for kind in ("Task", "ServiceRequest"):
        first = fhir.get(f"/fhir/{kind}/{reference}")
        etag = first.headers["ETag"]
        assert etag == f'W/"{first.get_json()["meta"]["versionId"]}"'
        assert first.headers["Last-Modified"].endswith("GMT")
        again = fhir.get(f"/fhir/{kind}/{reference}", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.get_data() == b""
        assert again.headers["ETag"] == etag
        other = fhir.get(f"/fhir/{kind}/{reference}", headers={"If-None-Match": 'W/"999"'})
        assert other.status_code == 200
    with app.app_context():
        services.record_first_touch(
            referral_row(reference), user(desk.intake), expected_version=None
        )
        db.session.commit()
    changed = fhir.get(f"/fhir/Task/{reference}", headers={"If-None-Match": etag})
    assert changed.status_code == 200
    assert changed.get_json()["status"] == "received"
    assert changed.headers["ETag"] != etag


def test_every_read_names_its_referral_in_the_audit_log(app, desk, fhir):
    with app.app_context():
        reference = make_referral(desk, Status.SCHEDULED)
    for path in (
        f"/fhir/Task/{reference}",
        f"/fhir/ServiceRequest/{reference}",
        f"/fhir/Appointment/{reference}",
        f"/fhir/Communication?based-on=ServiceRequest/{reference}",
        "/fhir/Task",
    ):
        assert fhir.get(path).status_code == 200
    with app.app_context():
        rows = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action.like("fhir.%")).order_by(AuditEntry.id)
        ).all()
        named = {(row.action, row.target_id) for row in rows if row.target_type == "referral"}
    for action in (
        "fhir.read_task",
        "fhir.read_service_request",
        "fhir.read_appointment",
        "fhir.search_communications",
        "fhir.search_tasks",
    ):
        assert (action, reference) in named, action


def test_each_read_needs_its_scope(app, desk, fhir):
    with app.app_context():
        reference = make_referral(desk, Status.SCHEDULED)
    token = fhir.token(desk.partner_a_id, scopes=("system/Task.rs",))
    assert fhir.get(f"/fhir/Task/{reference}", token=token).status_code == 200
    for path in (
        f"/fhir/ServiceRequest/{reference}",
        f"/fhir/Appointment/{reference}",
        f"/fhir/Communication?based-on=ServiceRequest/{reference}",
        "/fhir/Task?_include=Task:focus",
    ):
        response = fhir.get(path, token=token)
        assert response.status_code == 403, path
        OperationOutcome.model_validate(response.get_json())
    assert fhir.get(f"/fhir/Task/{reference}", token="nope").status_code == 401


# --- Search ---------------------------------------------------------------------------


def _ids(bundle) -> list[str]:
    return [e["resource"]["id"] for e in bundle["entry"] if e["search"]["mode"] == "match"]


def test_task_search_filters(app, desk, fhir):
    start = datetime(2026, 11, 2, 14, 0, tzinfo=UTC)
    with app.app_context():
        made = {}
        for hours, status in enumerate((Status.SUBMITTED, Status.IN_REVIEW, Status.DECLINED)):
            with frozen_at(start + timedelta(hours=hours)):
                made[status] = make_referral(desk, status)
    submitted, in_review, declined = made.values()
    everything = fhir.json("/fhir/Task")
    Bundle.model_validate(everything)
    assert everything["type"] == "searchset" and everything["total"] == 3
    assert _ids(everything) == [submitted, in_review, declined]  # oldest update first
    assert _ids(fhir.json("/fhir/Task?status=received")) == [in_review]
    assert _ids(fhir.json("/fhir/Task?status=requested,rejected")) == [submitted, declined]
    assert _ids(fhir.json("/fhir/Task?status=http://hl7.org/fhir/task-status|rejected")) == [
        declined
    ]
    assert _ids(fhir.json("/fhir/Task?status=draft")) == []
    assert _ids(fhir.json("/fhir/Task?business-status=declined")) == [declined]
    assert _ids(
        fhir.json(
            "/fhir/Task",
            query_string={"business-status": f"{BUSINESS_STATUS_SYSTEM}|in-review"},
        )
    ) == [in_review]
    assert _ids(fhir.json("/fhir/Task?status=received&business-status=declined")) == []
    assert _ids(fhir.json(f"/fhir/Task?based-on=ServiceRequest/{declined}")) == [declined]
    assert _ids(fhir.json(f"/fhir/Task?based-on={submitted},{declined}")) == [submitted, declined]
    assert _ids(
        fhir.json("/fhir/Task", query_string={"_lastUpdated": "gt2026-11-02T14:00:00Z"})
    ) == [in_review, declined]
    assert _ids(
        fhir.json("/fhir/Task", query_string={"_lastUpdated": "ge2026-11-02T14:00:00Z"})
    ) == [submitted, in_review, declined]
    assert _ids(
        fhir.json(
            "/fhir/Task",
            query_string=[
                ("_lastUpdated", "ge2026-11-02T10:00:00-05:00"),
                ("_lastUpdated", "lt2026-11-02T16:00:00Z"),
            ],
        )
    ) == [in_review]
    assert _ids(fhir.json("/fhir/Task", query_string={"_lastUpdated": "2026-11-02T16:00:00Z"})) == [
        declined
    ]
    assert _ids(
        fhir.json("/fhir/Task", query_string={"_lastUpdated": "le2026-11-02T14:00:00Z"})
    ) == [submitted]
    # The SMART Python client's {"$gt": ...} sends DSTU1's ">": read as gt.
    assert _ids(
        fhir.json("/fhir/Task", query_string={"_lastUpdated": ">2026-11-02T14:00:00Z"})
    ) == [in_review, declined]
    # A Task updated later moves to the end and a poll "since" finds it.
    with app.app_context(), frozen_at(start + timedelta(hours=5)):
        services.record_first_touch(
            referral_row(submitted), user(desk.intake), expected_version=None
        )
        db.session.commit()
    since = fhir.json("/fhir/Task", query_string={"_lastUpdated": "gt2026-11-02T17:00:00Z"})
    assert _ids(since) == [submitted]
    assert since["entry"][0]["resource"]["status"] == "received"


def test_task_search_pages_with_next_links_and_includes_the_focus(app, desk, fhir):
    with app.app_context():
        references = []
        for minutes in range(7):
            with frozen_at(datetime(2026, 11, 2, 14, minutes, tzinfo=UTC)):
                references.append(make_referral(desk, Status.SUBMITTED))
    # Two referrals updated in the same instant: the id breaks the tie, none is skipped.
    with app.app_context():
        rows = [referral_row(r) for r in references[2:4]]
        rows[1].updated_at = rows[0].updated_at
        db.session.commit()
    references[2:4] = sorted(references[2:4], key=lambda r: referral_row_id(app, r))
    seen, url, pages = [], "/fhir/Task?_count=3&_include=Task:focus", 0
    while url:
        page = fhir.json(url.replace("http://localhost", ""))
        Bundle.model_validate(page)
        pages += 1
        assert page["total"] == 7
        matches = _ids(page)
        included = [e["resource"] for e in page["entry"] if e["search"]["mode"] == "include"]
        assert [r["id"] for r in included] == matches
        assert all(r["resourceType"] == "ServiceRequest" for r in included)
        seen += matches
        links = {link["relation"]: link["url"] for link in page["link"]}
        assert "_count=3" in links["self"]
        url = links.get("next")
        assert pages <= 3
    assert seen == references
    assert pages == 3
    none = fhir.json("/fhir/Task?_count=0")
    assert none["total"] == 7 and none["entry"] == []


def referral_row_id(app, reference: str) -> int:
    with app.app_context():
        return referral_row(reference).id


def test_search_statements_do_not_grow_with_the_data(app, desk, fhir, count_queries):
    def statements(path: str) -> int:
        with count_queries() as counter:
            assert fhir.get(path).status_code == 200
        return counter.count

    with app.app_context():
        first = [make_referral(desk, Status.IN_REVIEW) for _ in range(3)]
    small = statements("/fhir/Task?_include=Task:focus")
    small_communications = statements(f"/fhir/Communication?based-on={first[0]}")
    with app.app_context():
        for _ in range(30):
            make_referral(desk, Status.IN_REVIEW)
        referral = referral_row(first[0])
        for _ in range(5):
            services.share_follow_up(
                referral, user(desk.clinical), expected_version=None, message="More"
            )
        request_information(
            referral,
            user(desk.intake),
            expected_version=None,
            required_item_ids=[],
            other_documents=["A", "B"],
            other_questions=["C"],
            message="",
        )
        db.session.commit()
    assert statements("/fhir/Task?_include=Task:focus") == small
    assert statements(f"/fhir/Communication?based-on={first[0]}") == small_communications + 1
    # (+1: the items of the information request, read once it exists.)


# --- Metadata -------------------------------------------------------------------------


def test_metadata_says_exactly_what_is_supported(app, client):
    response = client.get("/fhir/metadata")  # no token
    assert response.status_code == 200
    assert response.mimetype == "application/fhir+json"
    statement = response.get_json()
    CapabilityStatement.model_validate(statement)
    assert statement["fhirVersion"] == "4.0.1"
    assert statement["status"] == "active" and statement["kind"] == "instance"
    assert "json" in statement["format"]
    (rest,) = statement["rest"]
    assert rest["mode"] == "server"
    security = rest["security"]
    assert security["service"][0]["coding"][0]["code"] == "SMART-on-FHIR"
    (oauth,) = security["extension"]
    assert oauth["url"] == "http://fhir-registry.smarthealthit.org/StructureDefinition/oauth-uris"
    assert oauth["extension"] == [
        {"url": "token", "valueUri": app.config["PORTAL_BASE_URL"].rstrip("/") + "/auth/token"}
    ]
    resources = {r["type"]: r for r in rest["resource"]}
    assert set(resources) == {
        "Task",
        "ServiceRequest",
        "Communication",
        "Appointment",
        "CodeSystem",
    }
    interactions = {t: {i["code"] for i in r["interaction"]} for t, r in resources.items()}
    assert interactions == {
        "Task": {"read", "search-type"},
        "ServiceRequest": {"read"},
        "Communication": {"search-type"},
        "Appointment": {"read"},
        "CodeSystem": {"read"},
    }
    assert {p["name"] for p in resources["Task"]["searchParam"]} == {
        "_lastUpdated",
        "status",
        "business-status",
        "based-on",
    }
    assert resources["Task"]["searchInclude"] == ["Task:focus"]
    assert [p["name"] for p in resources["Communication"]["searchParam"]] == ["based-on"]
    assert rest["operation"][0]["name"] == "process-message"
    (messaging,) = statement["messaging"]
    assert messaging["endpoint"][0]["address"].endswith("/fhir/$process-message")
    assert {m["definition"].rsplit("/", 1)[1] for m in messaging["supportedMessage"]} == {
        "add-service-request",
        "revoke-service-request",
        "add-communication",
    }
    # Every scope a client can hold reads or writes something the statement names.
    assert {scope.split("/")[1].split(".")[0] for scope in FHIR_SCOPES} <= set(resources)


# --- Hostile search parameters ---------------------------------------------------------

HOSTILE_SEARCHES = [
    ("/fhir/Task", {"foo": "1"}, "foo"),
    ("/fhir/Task", {"status:not": "requested"}, "status:not"),
    ("/fhir/Task", {"_sort": "_lastUpdated"}, "_sort"),
    ("/fhir/Task", {"_count": "99999999999999999999999999"}, "_count"),
    ("/fhir/Task", {"_count": "-1"}, "_count"),
    ("/fhir/Task", {"_count": "101"}, "_count"),
    ("/fhir/Task", {"_count": "1\x00"}, "_count"),
    ("/fhir/Task", {"_count": "١٢"}, "_count"),
    ("/fhir/Task", [("_count", "1"), ("_count", "2")], "_count"),
    ("/fhir/Task", [("status", "requested"), ("status", "received")], "status"),
    ("/fhir/Task", {"status": "unknown"}, "status"),
    ("/fhir/Task", {"status": "requested\x00"}, "status"),
    ("/fhir/Task", {"status": "http://example.org|requested"}, "status"),
    ("/fhir/Task", {"status": ","}, "status"),
    ("/fhir/Task", {"status": ""}, "status"),
    ("/fhir/Task", {"business-status": "requested"}, "business-status"),
    ("/fhir/Task", {"based-on": "Patient/R-0000-0000"}, "based-on"),
    ("/fhir/Task", {"based-on": "ServiceRequest/x' OR 1=1"}, "based-on"),
    ("/fhir/Task", {"based-on": ",".join(["R-0000-0000"] * 51)}, "based-on"),
    ("/fhir/Task", {"_include": "Task:owner"}, "_include"),
    ("/fhir/Task", {"_include": "*"}, "_include"),
    ("/fhir/Task", {"_lastUpdated": "yesterday"}, "_lastUpdated"),
    ("/fhir/Task", {"_lastUpdated": "gt2026-11-30"}, "_lastUpdated"),
    ("/fhir/Task", {"_lastUpdated": "gt2026-13-40T25:61:61Z"}, "_lastUpdated"),
    ("/fhir/Task", {"_lastUpdated": "gt2026-11-30T10:00:00"}, "_lastUpdated"),
    ("/fhir/Task", {"_lastUpdated": "ne2026-11-30T10:00:00Z"}, "_lastUpdated"),
    ("/fhir/Task", {"_lastUpdated": "gt0001-01-01T00:00:00+14:00"}, "_lastUpdated"),
    ("/fhir/Task", {"_lastUpdated": "gt9999-12-31T23:59:59-14:00"}, "_lastUpdated"),
    ("/fhir/Task", {"_lastUpdated": "gt2026-11-30T10:00:00\x00Z"}, "_lastUpdated"),
    ("/fhir/Task", {"_lastUpdated": "x" * 5000}, "_lastUpdated"),
    ("/fhir/Task", [("_lastUpdated", "gt2026-11-30T10:00:00Z")] * 3, "_lastUpdated"),
    ("/fhir/Task", {"_cursor": "99999999999999999999-1"}, "_cursor"),
    ("/fhir/Task", {"_cursor": "1-99999999999999999999"}, "_cursor"),
    ("/fhir/Task", {"_cursor": "abc"}, "_cursor"),
    ("/fhir/Communication", {}, "based-on"),
    ("/fhir/Communication", {"based-on": "R-0000-0000,R-0000-0001"}, "based-on"),
    ("/fhir/Communication", {"based-on": "\x00"}, "based-on"),
    ("/fhir/Communication", {"based-on": "R-0000-0000", "_count": "1"}, "_count"),
]


def test_hostile_search_parameters_answer_400_naming_the_parameter(app, desk, fhir):
    with app.app_context():
        make_referral(desk, Status.SUBMITTED)
    for path, query, parameter in HOSTILE_SEARCHES:
        response = fhir.get(path, query_string=query)
        assert response.status_code == 400, (query, response.get_data(as_text=True)[:300])
        outcome = response.get_json()
        OperationOutcome.model_validate(outcome)
        assert outcome["issue"][0]["expression"] == [parameter], query
        assert outcome["issue"][0]["diagnostics"]


def test_hostile_ids_answer_404(app, desk, fhir):
    for kind in ("Task", "ServiceRequest", "Appointment"):
        for hostile in ("%00", "R-0000-000%00", "9" * 400, "%E2%80%AE", "..%2F..%2Fetc"):
            response = fhir.get(f"/fhir/{kind}/{hostile}")
            assert response.status_code == 404, (kind, hostile)
            OperationOutcome.model_validate(response.get_json())


def test_the_updated_time_is_the_last_partner_visible_update(app, desk, fhir):
    """A staff-only note moves neither Task.lastModified nor a _lastUpdated poll."""
    with app.app_context():
        reference = make_referral(desk, Status.IN_REVIEW)
    before = fhir.json(f"/fhir/Task/{reference}")
    with app.app_context(), frozen_at(utcnow() + timedelta(minutes=5)):
        services.add_staff_note(
            referral_row(reference), user(desk.intake), expected_version=None, note="x"
        )
        db.session.commit()
    after = fhir.json(f"/fhir/Task/{reference}")
    assert after["lastModified"] == before["lastModified"]
    assert after["meta"]["lastUpdated"] == before["meta"]["lastUpdated"]


def test_a_poll_since_the_newest_seen_misses_nothing_in_the_same_second(app, desk, fhir):
    moment = datetime(2026, 11, 2, 14, 0, 0, 300_000, tzinfo=UTC)
    with app.app_context():
        with frozen_at(moment):
            first = make_referral(desk, Status.SUBMITTED)
        seen = fhir.json("/fhir/Task")["entry"][-1]["resource"]["meta"]["lastUpdated"]
        assert seen == "2026-11-02T14:00:00.300000Z"
        with frozen_at(moment + timedelta(milliseconds=400)):
            second = make_referral(desk, Status.SUBMITTED)
    poll = fhir.json("/fhir/Task", query_string={"_lastUpdated": f"gt{seen}"})
    assert _ids(poll) == [second]
    assert first not in _ids(poll)


def test_a_visit_closed_before_its_time_is_cancelled_and_after_it_a_no_show(app, desk, fhir):
    with app.app_context():
        withdrawn = make_referral(desk, Status.SCHEDULED)
        services.withdraw(referral_row(withdrawn), user(desk.partner_a), expected_version=None)
        unreachable = make_referral(desk, Status.NO_SHOW)
        referral = referral_row(unreachable)
        intake, no_answer = user(desk.intake), (ContactMethod.PHONE, OutreachResult.NO_ANSWER)
        for channel, result in [no_answer] * services.OUTREACH_ATTEMPTS_BEFORE_UNREACHABLE:
            services.log_outreach(
                referral, intake, expected_version=None, channel=channel, result=result
            )
        services.mark_unreachable(referral, user(desk.intake), expected_version=None)
        rebooking = make_referral(desk, Status.SCHEDULED)
        cancel_appointment(referral_row(rebooking), user(desk.intake), expected_version=None)
        db.session.commit()
    assert fhir.json(f"/fhir/Appointment/{withdrawn}")["status"] == "cancelled"
    assert fhir.json(f"/fhir/Task/{withdrawn}")["status"] == "cancelled"
    assert fhir.json(f"/fhir/Appointment/{unreachable}")["status"] == "noshow"
    assert fhir.json(f"/fhir/Task/{unreachable}")["status"] == "failed"
    # Cancelled to be booked again: no visit now, the Task is back to accepted.
    assert fhir.get(f"/fhir/Appointment/{rebooking}").status_code == 404
    task = fhir.json(f"/fhir/Task/{rebooking}")
    assert task["status"] == "accepted" and "output" not in task
