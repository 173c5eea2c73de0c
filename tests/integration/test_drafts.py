"""A referring office saves the referral form for later, and finishes it from Drafts."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from html import unescape

import pytest
from sqlalchemy import func, select

from portal.clock import frozen_at, utcnow
from portal.extensions import db
from portal.formatting import format_moment
from portal.models import (
    AuditEntry,
    Document,
    DraftDocument,
    ItemKind,
    Referral,
    ReferralDraft,
    ReferralItem,
    User,
)
from portal.referrals import drafts
from portal.referrals.documents import Upload
from tests.fixtures.desk import PDF, make_referral, user
from tests.integration.test_submission import form_data

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 32
HALF_A_FORM = {
    "patient_first_name": "Zephyrine",
    "patient_last_name": "Quillfeather",
    "service_line": None,  # the desk's sleep line, filled in by `half_a_form`
    "reason": "Snoring and daytime",
    "urgency": "urgent",
    "consent_to_contact": "y",
    "submission_token": "draft-token-" + "b" * 20,
}


def half_a_form(desk, **overrides) -> dict:
    data = {**HALF_A_FORM, "service_line": str(desk.sleep_id), **overrides}
    return {name: value for name, value in data.items() if value is not None}


def save(client, desk, *, draft_id: int | None = None, files=(), **overrides):
    data = half_a_form(desk, **overrides)
    if files:
        data["documents"] = [(io.BytesIO(content), name) for name, content in files]
    path = f"/referrals/drafts/{draft_id}" if draft_id else "/referrals/drafts"
    return client.post(path, data=data, content_type="multipart/form-data")


def only_draft(app) -> ReferralDraft:
    with app.app_context():
        draft = db.session.scalars(select(ReferralDraft)).one()
        db.session.expunge(draft)
        return draft


def tag(html: str, pattern: str) -> str:
    """The first tag of `html` holding `pattern` (a regular expression)."""
    return re.search(rf"<[^>]*{pattern}[^>]*>", html).group(0)


def count(app, model) -> int:
    with app.app_context():
        return db.session.scalar(select(func.count()).select_from(model))


def audit_actions(app) -> list[tuple[str, dict]]:
    with app.app_context():
        entries = db.session.scalars(
            select(AuditEntry)
            .where(AuditEntry.target_type == "referral_draft")
            .order_by(AuditEntry.id)
        )
        return [(entry.action, entry.detail) for entry in entries]


@pytest.fixture
def saved_draft(app, client_for, desk) -> int:
    """Alpha's draft: half a form and one document, saved by its first user."""
    response = save(client_for(desk.partner_a), desk, files=[("labs.pdf", PDF)])
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    return only_draft(app).id


# --- Saving --------------------------------------------------------------------------------


def test_half_a_form_and_a_document_are_saved_and_listed_with_who_and_when(app, client_for, desk):
    client = client_for(desk.partner_a)
    response = save(client, desk, files=[("labs.pdf", PDF)])
    assert response.status_code == 302
    assert response.headers["Location"].endswith("/referrals/drafts")

    draft = only_draft(app)
    assert draft.partner_id == desk.partner_a_id
    assert draft.fields["patient_first_name"] == "Zephyrine"
    assert draft.fields["consent_to_contact"] is True
    assert "referring_provider_npi" not in draft.fields  # empty fields are left out
    with app.app_context():
        document = db.session.scalars(select(DraftDocument)).one()
        assert (document.filename, document.content) == ("labs.pdf", PDF)
        assert draft.created_by_id == draft.saved_by_id == user(desk.partner_a).id
        saved = format_moment(draft.saved_at)
        expires = format_moment(draft.saved_at + timedelta(days=30))

    page = client.get("/referrals/drafts").get_data(as_text=True)
    assert "Draft saved" in page
    assert "Zephyrine Quillfeather" in page and "Sleep medicine" in page
    assert saved in page and expires in page
    assert re.search(r"<td[^>]*>Office</td>", page)  # who saved it
    assert f'href="/referrals/drafts/{draft.id}"' in page
    # Linked from the navigation and from "My referrals".
    assert client.get("/referrals/").get_data(as_text=True).count('href="/referrals/drafts"') == 2


def test_the_drafts_page_reads_the_same_statements_for_one_draft_or_many(
    app, client_for, desk, count_queries
):
    with app.app_context():
        colleague = user(desk.partner_a2)
        db.session.add(
            User(
                email="third@alpha.example",
                full_name="Third",
                role=colleague.role,
                partner_id=colleague.partner_id,
                password_hash=colleague.password_hash,
            )
        )
        db.session.commit()
    client = client_for(desk.partner_a)
    client.get("/account")  # the process reads the SLA settings once
    statements = []
    # Saved by two others: who saved each draft is not read row by row.
    for token, saver in (("first", desk.partner_a2), ("second", "third@alpha.example")):
        save(client_for(saver), desk, submission_token=f"{token}-token-" + "d" * 16)
        with count_queries() as counter:
            assert client.get("/referrals/drafts").status_code == 200
        statements.append(counter.count)
    assert statements[0] == statements[1], statements


def test_the_form_offers_save_for_later_to_partners_only(client_for, desk):
    partner_form = client_for(desk.partner_a).get("/referrals/new", follow_redirects=True)
    assert 'formaction="/referrals/drafts"' in partner_form.get_data(as_text=True)
    staff_form = client_for(desk.intake).get("/referrals/new", follow_redirects=True)
    assert staff_form.status_code == 200
    assert "Save for later" not in staff_form.get_data(as_text=True)


def test_saving_the_same_form_twice_keeps_one_draft(app, client_for, desk):
    client = client_for(desk.partner_a)
    assert save(client, desk).status_code == 302
    assert save(client, desk, reason="Snoring and daytime sleepiness").status_code == 302
    assert count(app, ReferralDraft) == 1
    assert only_draft(app).fields["reason"] == "Snoring and daytime sleepiness"


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("patient_first_name", "Zeph\x00yrine", "Remove the control characters"),
        ("reason", "A" * 100_000, "Use at most 500 characters (this has 100,000)"),
        ("clinical_context", "\x00", "Remove the control or invisible formatting characters"),
        ("submission_token", "t" * 65, "Use at most 64 characters"),
        ("patient_date_of_birth", "A" * 100_000, "Not a valid date value"),
        ("patient_date_of_birth", "9999-12-31", "Enter a date between 1800 and 2199"),
        ("urgency", "\x00", "Not a valid choice"),
        ("service_line", "A" * 100_000, "Not a valid choice"),
    ],
)
def test_hostile_values_are_refused_with_a_form_error_and_nothing_is_stored(
    app, client_for, desk, field, value, message
):
    response = save(client_for(desk.partner_a), desk, files=[("labs.pdf", PDF)], **{field: value})
    html = unescape(response.get_data(as_text=True))
    assert response.status_code == 422
    assert "There is a problem" in html and message in html
    assert count(app, ReferralDraft) == 0 and count(app, DraftDocument) == 0
    assert audit_actions(app) == []


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("labs.pdf", b"#!/bin/sh\necho not a pdf", "“labs.pdf” is not a PDF, PNG or JPEG file."),
        ("big.pdf", b"%PDF-" + b"0" * 2048, "“big.pdf” is larger than"),
        ("empty.pdf", b"", "“empty.pdf” is empty."),
    ],
)
def test_a_wrong_or_oversize_document_is_refused_and_nothing_is_stored(
    app, client_for, desk, name, content, message
):
    app.config["DOCUMENT_MAX_BYTES"] = 1024
    response = save(client_for(desk.partner_a), desk, files=[(name, content)])
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert count(app, ReferralDraft) == 0 and count(app, DraftDocument) == 0


# --- Continuing ------------------------------------------------------------------------------


def test_a_colleague_opens_the_draft_with_its_fields_and_document(
    app, client_for, desk, saved_draft
):
    response = client_for(desk.partner_a2).get(f"/referrals/drafts/{saved_draft}")
    html = response.get_data(as_text=True)
    assert response.status_code == 200
    assert 'value="Zephyrine"' in html and 'value="Quillfeather"' in html
    assert "Snoring and daytime</textarea>" in html
    assert "checked" in tag(html, 'value="urgent"')
    assert "checked" in tag(html, 'id="consent_to_contact"')
    assert "selected" in tag(html, f'option[^>]*value="{desk.sleep_id}"')
    assert "labs.pdf" in html and 'name="remove_document"' in html
    assert f'<input type="hidden" name="draft" value="{saved_draft}">' in html
    assert f'formaction="/referrals/drafts/{saved_draft}"' in html
    # A new token: the page the draft was saved from can never send the same referral.
    token = re.search(r'value="([^"]+)"', tag(html, 'id="submission_token"')).group(1)
    assert token != HALF_A_FORM["submission_token"]
    assert f'action="/referrals/new?form={token}"' in html


def test_saving_a_continued_draft_updates_it_and_says_who_saved_it(
    app, client_for, desk, saved_draft
):
    colleague = client_for(desk.partner_a2)
    response = save(
        colleague,
        desk,
        draft_id=saved_draft,
        files=[("scan.png", PNG)],
        referring_provider_name="Dr. Ruth Adler",
    )
    assert response.status_code == 302
    draft = only_draft(app)
    assert draft.id == saved_draft
    assert draft.fields["referring_provider_name"] == "Dr. Ruth Adler"
    with app.app_context():
        assert draft.created_by_id == user(desk.partner_a).id
        assert draft.saved_by_id == user(desk.partner_a2).id
        names = db.session.scalars(select(DraftDocument.filename).order_by(DraftDocument.id))
        assert list(names) == ["labs.pdf", "scan.png"]
    assert "Second" in colleague.get("/referrals/drafts").get_data(as_text=True)


def test_saving_a_continued_draft_keeps_it_one_draft_whatever_the_form_says(
    app, client_for, desk, saved_draft
):
    client = client_for(desk.partner_a)
    for draft_field in ("\x00", "9" * 5000, "0"):
        response = save(client, desk, draft_id=saved_draft, draft=draft_field)
        assert response.status_code == 302
    assert count(app, ReferralDraft) == 1 and count(app, DraftDocument) == 1


def test_a_document_ticked_for_removal_is_removed_on_save(app, client_for, desk, saved_draft):
    with app.app_context():
        document_id = db.session.scalar(select(DraftDocument.id))
    response = save(
        client_for(desk.partner_a), desk, draft_id=saved_draft, remove_document=str(document_id)
    )
    assert response.status_code == 302
    assert count(app, DraftDocument) == 0


# --- Sending ----------------------------------------------------------------------------------


def test_sending_a_draft_makes_a_referral_with_its_documents_and_deletes_it(
    app, client_for, desk, saved_draft
):
    client = client_for(desk.partner_a2)
    client.get(f"/referrals/drafts/{saved_draft}")
    data = form_data(desk, draft=str(saved_draft))
    data["documents"] = [(io.BytesIO(PNG), "scan.png")]
    response = client.post("/referrals/new", data=data, content_type="multipart/form-data")
    assert response.status_code == 302, response.get_data(as_text=True)[:2000]
    assert "/submitted" in response.headers["Location"]

    with app.app_context():
        referral = db.session.scalars(select(Referral)).one()
        documents = db.session.scalars(select(Document).order_by(Document.id)).all()
        assert [(d.filename, d.content) for d in documents] == [
            ("labs.pdf", PDF),
            ("scan.png", PNG),
        ]
        assert all(d.referral_id == referral.id for d in documents)
        assert referral.submitted_by.email == desk.partner_a2
    assert count(app, ReferralDraft) == 0 and count(app, DraftDocument) == 0
    assert "Zephyrine" not in client.get("/referrals/drafts").get_data(as_text=True)
    assert [action for action, _ in audit_actions(app)][-1] == "draft.submitted"


def test_a_draft_sent_twice_says_it_was_received_not_that_the_draft_was_deleted(
    app, client_for, desk, saved_draft
):
    client = client_for(desk.partner_a)
    page = client.get(f"/referrals/drafts/{saved_draft}").get_data(as_text=True)
    token = re.search(r'name="submission_token"[^>]*value="([^"]+)"', page).group(1)
    data = form_data(desk, draft=str(saved_draft), submission_token=token)
    first = client.post(f"/referrals/new?form={token}", data=data)
    assert first.status_code == 302 and "/submitted" in first.headers["Location"]
    # The same page sent again: a double click, or Back to the draft's page and Send.
    again = client.post(f"/referrals/new?form={token}", data=data)
    assert again.status_code == 302
    assert again.headers["Location"] == first.headers["Location"]
    assert count(app, Referral) == 1
    page = client.get(again.headers["Location"]).get_data(as_text=True)
    assert "already received; it was not sent twice" in page


def test_a_draft_is_validated_in_full_when_sent_and_kept_when_refused(
    app, client_for, desk, saved_draft
):
    client = client_for(desk.partner_a)
    data = form_data(desk, draft=str(saved_draft), referring_provider_npi="12345")
    response = client.post("/referrals/new", data=data)
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Enter the 10-digit NPI" in html
    assert "labs.pdf" in html and f'name="draft" value="{saved_draft}"' in html
    assert count(app, Referral) == 0 and count(app, ReferralDraft) == 1


def test_a_document_ticked_for_removal_is_not_sent(app, client_for, desk, saved_draft):
    with app.app_context():
        document_id = db.session.scalar(select(DraftDocument.id))
    data = form_data(desk, draft=str(saved_draft), remove_document=str(document_id))
    response = client_for(desk.partner_a).post("/referrals/new", data=data)
    assert response.status_code == 302
    assert count(app, Document) == 0 and count(app, ReferralDraft) == 0


def test_a_required_document_saved_with_the_draft_provides_its_item(app, client_for, desk):
    client = client_for(desk.partner_a)
    response = client.post(
        "/referrals/drafts",
        data=half_a_form(
            desk,
            service_line=str(desk.cardio_id),
            **{f"item_{desk.echo_item_id}": (io.BytesIO(PDF), "echo.pdf")},
        ),
        content_type="multipart/form-data",
    )
    assert response.status_code == 302
    draft = only_draft(app)
    page = client.get(f"/referrals/drafts/{draft.id}").get_data(as_text=True)
    assert "echo.pdf" in page and "Echocardiogram report" in page

    data = form_data(
        desk,
        draft=str(draft.id),
        service_line=str(desk.cardio_id),
        **{f"item_{desk.meds_item_id}": "Aspirin 81 mg"},
    )
    assert client.post("/referrals/new", data=data).status_code == 302
    with app.app_context():
        items = {i.kind: i for i in db.session.scalars(select(ReferralItem))}
        assert items[ItemKind.DOCUMENT].is_provided
        assert items[ItemKind.DOCUMENT].document.filename == "echo.pdf"
        assert db.session.scalars(select(Referral)).one().missing_items == []


def test_kept_and_new_documents_together_stay_within_the_limit(app, client_for, desk, saved_draft):
    app.config["DOCUMENT_MAX_COUNT"] = 1
    data = form_data(desk, draft=str(saved_draft))
    data["documents"] = [(io.BytesIO(PNG), "scan.png")]
    response = client_for(desk.partner_a).post(
        "/referrals/new", data=data, content_type="multipart/form-data"
    )
    assert response.status_code == 422
    assert "counting the 1 kept with the draft" in response.get_data(as_text=True)
    assert count(app, Referral) == 0 and count(app, ReferralDraft) == 1


def test_a_possible_duplicate_keeps_the_draft_until_sent_anyway(app, client_for, desk, saved_draft):
    with app.app_context():
        make_referral(desk)  # the same patient, from the same office
    client = client_for(desk.partner_a)
    data = form_data(desk, draft=str(saved_draft), submission_token="other-token-" + "c" * 20)
    warned = client.post("/referrals/new", data=data)
    assert warned.status_code == 409
    assert "labs.pdf" in warned.get_data(as_text=True)
    assert count(app, ReferralDraft) == 1 and count(app, DraftDocument) == 1

    sent = client.post("/referrals/new", data={**data, "submit_anyway": "1"})
    assert sent.status_code == 302
    assert count(app, ReferralDraft) == 0 and count(app, Document) == 1


# --- Who may see drafts --------------------------------------------------------------------


def draft_requests(draft_id: int) -> list[tuple[str, str]]:
    return [
        ("GET", f"/referrals/drafts/{draft_id}"),
        ("GET", f"/referrals/drafts/{draft_id}/delete"),
        ("POST", f"/referrals/drafts/{draft_id}/delete"),
        ("POST", f"/referrals/drafts/{draft_id}"),
    ]


def test_another_office_gets_404_and_never_sees_the_draft(app, client_for, desk, saved_draft):
    other = client_for(desk.partner_b)
    for method, path in draft_requests(saved_draft):
        assert other.open(path, method=method, data=half_a_form(desk)).status_code == 404, path
    assert "Zephyrine" not in other.get("/referrals/drafts").get_data(as_text=True)
    # Naming the draft in its own referral form neither sends nor deletes it: to that
    # office it does not exist, as if it had been deleted (the form comes back).
    response = other.post("/referrals/new", data=form_data(desk, draft=str(saved_draft)))
    assert response.status_code == 409
    assert "This draft was deleted meanwhile" in response.get_data(as_text=True)
    assert count(app, ReferralDraft) == 1 and count(app, Document) == 0


@pytest.mark.parametrize("email", ["intake@desk.example", "admin@desk.example"])
def test_drafts_are_invisible_to_staff(app, client_for, desk, saved_draft, email):
    staff = client_for(email)
    requests = [("GET", "/referrals/drafts"), ("POST", "/referrals/drafts")]
    for method, path in [*requests, *draft_requests(saved_draft)]:
        assert staff.open(path, method=method, data=half_a_form(desk)).status_code == 404, path
    assert 'href="/referrals/drafts"' not in staff.get("/queue").get_data(as_text=True)
    assert count(app, ReferralDraft) == 1


# --- Deleting, expiring, auditing --------------------------------------------------------


def test_a_draft_is_deleted_after_confirming(app, client_for, desk, saved_draft):
    client = client_for(desk.partner_a2)
    page = client.get(f"/referrals/drafts/{saved_draft}/delete").get_data(as_text=True)
    assert "Delete this draft?" in page and "Zephyrine Quillfeather" in page
    assert count(app, ReferralDraft) == 1  # asking deletes nothing
    response = client.post(f"/referrals/drafts/{saved_draft}/delete")
    assert response.status_code == 302
    assert count(app, ReferralDraft) == 0 and count(app, DraftDocument) == 0


def test_deleting_needs_the_csrf_token(app, client_for, desk, saved_draft):
    client = client_for(desk.partner_a)
    response = client.post(f"/referrals/drafts/{saved_draft}/delete", without_csrf=True)
    assert response.status_code == 400
    assert count(app, ReferralDraft) == 1


def test_the_jobs_process_deletes_drafts_past_their_days_and_audits_each(app, desk):
    from jobs.maintenance import purge_expired_drafts

    def draft_saved(days_ago: int) -> int:
        with frozen_at(utcnow() - timedelta(days=days_ago)):
            content = drafts.DraftContent(
                {"patient_first_name": "Zephyrine", "submission_token": f"token-{days_ago}"},
                [Upload("labs.pdf", "application/pdf", PDF)],
                {},
            )
            draft = drafts.save_draft(None, content, user(desk.partner_a))
            db.session.commit()
            return draft.id

    with app.app_context():
        old, recent = draft_saved(31), draft_saved(29)
        purge_expired_drafts()
        assert list(db.session.scalars(select(ReferralDraft.id))) == [recent]
        assert db.session.scalar(select(func.count(DraftDocument.id))) == 1
        expired = db.session.scalars(
            select(AuditEntry).where(AuditEntry.action == "draft.expired")
        ).all()
    assert [(e.target_id, e.actor_id) for e in expired] == [(str(old), None)]


def test_opening_saving_and_deleting_are_audited_without_patient_data(
    app, client_for, desk, saved_draft
):
    client = client_for(desk.partner_a)
    client.get(f"/referrals/drafts/{saved_draft}")
    save(client, desk, draft_id=saved_draft)
    client.post(f"/referrals/drafts/{saved_draft}/delete")
    entries = audit_actions(app)
    assert [action for action, _ in entries] == [
        "draft.saved",
        "draft.opened",
        "draft.saved",
        "draft.deleted",
    ]
    with app.app_context():
        targets = set(
            db.session.scalars(
                select(AuditEntry.target_id).where(AuditEntry.target_type == "referral_draft")
            )
        )
        actors = set(
            db.session.scalars(
                select(AuditEntry.actor_id).where(AuditEntry.target_type == "referral_draft")
            )
        )
        assert targets == {str(saved_draft)} and actors == {user(desk.partner_a).id}
    text = repr(entries)
    for typed in ("Zephyrine", "Quillfeather", "Snoring", "labs.pdf"):
        assert typed not in text


def test_back_after_save_for_later_opens_that_draft_not_a_blank_form(app, client_for, desk):
    client = client_for(desk.partner_a)
    assert save(client, desk).status_code == 302
    token = HALF_A_FORM["submission_token"]
    back = client.get(f"/referrals/new?form={token}")
    assert back.status_code == 302
    assert back.headers["Location"] == f"/referrals/drafts/{only_draft(app).id}"
