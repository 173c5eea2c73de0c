"""Supporting documents: recognised by content, never by name or claimed type."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from flask_babel import gettext
from flask_babel import lazy_gettext as _l
from werkzeug.datastructures import FileStorage

from portal.text import printable

# Leading bytes of each accepted format.
SIGNATURES = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
)
ACCEPTED_DESCRIPTION = _l("PDF, PNG or JPEG")


class DocumentRefused(ValueError):
    """The upload cannot be accepted; the message says why."""


@dataclass(frozen=True)
class Upload:
    filename: str
    content_type: str
    content: bytes

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content).hexdigest()


def sniff_content_type(head: bytes) -> str | None:
    for signature, content_type in SIGNATURES:
        if head.startswith(signature):
            return content_type
    return None


def safe_filename(name: str) -> str:
    """A display name with no path, no control characters or direction overrides."""
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = printable(name.replace('"', ""), max_length=200).strip()
    return name or "document"


def read_upload(storage: FileStorage, max_bytes: int) -> Upload:
    """Read one uploaded file, refusing anything too large or of the wrong kind."""
    content = storage.stream.read(max_bytes + 1)
    name = safe_filename(storage.filename or "document")
    if not content:
        raise DocumentRefused(gettext("“%(name)s” is empty.", name=name))
    if len(content) > max_bytes:
        limit_mb = max_bytes / (1024 * 1024)
        raise DocumentRefused(
            gettext("“%(name)s” is larger than %(size)s MB.", name=name, size=format(limit_mb, "g"))
        )
    content_type = sniff_content_type(content[:16])
    if content_type is None:
        raise DocumentRefused(
            gettext(
                "“%(name)s” is not a %(formats)s file.", name=name, formats=ACCEPTED_DESCRIPTION
            )
        )
    return Upload(filename=name, content_type=content_type, content=content)


def has_file(storage: FileStorage | None) -> bool:
    return storage is not None and bool(storage.filename)
