"""The columns of an uploaded file kept in the database, so every web node sees it."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from portal.clock import utcnow


class StoredFile:
    """A mixin: the file's name and kind as checked at upload, its bytes (loaded only
    when read), and who uploaded it when."""

    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(40))
    size_bytes: Mapped[int]
    sha256: Mapped[str] = mapped_column(String(64))
    # Nullable as the first migration made `document.content`; never null in practice.
    content: Mapped[bytes] = mapped_column(LargeBinary, deferred=True, nullable=True)
    uploaded_by_id: Mapped[int] = mapped_column(ForeignKey("user_account.id"))
    uploaded_at: Mapped[datetime] = mapped_column(default=utcnow)
