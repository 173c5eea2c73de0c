"""Keeping uploaded documents with their referral (or with a draft of one)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from portal.clock import utcnow
from portal.extensions import db
from portal.models import Document, Referral, User
from portal.referrals.documents import Upload


def stored_file_columns(
    upload: Upload, uploaded_by: User, at: datetime | None = None
) -> dict[str, Any]:
    """The StoredFile columns for `upload`: a Document's or a DraftDocument's."""
    return dict(
        filename=upload.filename,
        content_type=upload.content_type,
        size_bytes=len(upload.content),
        sha256=upload.sha256,
        content=upload.content,
        uploaded_by_id=uploaded_by.id,
        uploaded_at=at or utcnow(),
    )


def store_document(referral: Referral, upload: Upload, uploaded_by: User) -> Document:
    document = Document(referral=referral, **stored_file_columns(upload, uploaded_by))
    db.session.add(document)
    return document
