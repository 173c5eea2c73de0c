"""Keeping uploaded documents with their referral."""

from __future__ import annotations

from portal.clock import utcnow
from portal.extensions import db
from portal.models import Document, Referral, User
from portal.referrals.documents import Upload


def store_document(referral: Referral, upload: Upload, uploaded_by: User) -> Document:
    document = Document(
        referral=referral,
        filename=upload.filename,
        content_type=upload.content_type,
        size_bytes=len(upload.content),
        sha256=upload.sha256,
        content=upload.content,
        uploaded_by_id=uploaded_by.id,
        uploaded_at=utcnow(),
    )
    db.session.add(document)
    return document
