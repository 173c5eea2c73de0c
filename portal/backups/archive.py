"""The backup archive: an uncompressed tar holding `manifest.json` and the database.

`manifest.json` comes first, so listing archives reads a few kilobytes of each. It
records what the database holds (schema revision, row counts per table) and the
sha256 of every other file in the archive; a restore checks every one before it
touches a database. The database file is a SQLite file or a `pg_dump` custom-format
dump (already compressed), so the tar itself is not.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import tarfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

MANIFEST_NAME = "manifest.json"
FORMAT = "portal-backup/1"
# The only names the portal writes, lists and prunes: nothing else in the directory
# is ever touched.
ARCHIVE_NAME = re.compile(r"portal-backup-(\d{8}T\d{6}Z)\.tar")
_NAME_TIME = "%Y%m%dT%H%M%SZ"
_CHUNK = 1024 * 1024


class BackupError(Exception):
    """A backup or restore that cannot go ahead; the message says why, to an operator."""


@dataclass(frozen=True)
class Manifest:
    created_at: str  # ISO 8601 UTC, when the database's snapshot was taken
    dialect: str  # "sqlite" or "postgresql"
    schema_revision: str  # the database's Alembic revision
    portal_version: str
    database_file: str  # the archive member holding the database
    row_counts: dict[str, int]
    files: dict[str, dict[str, str | int]]  # name -> {"sha256": ..., "bytes": ...}
    tools: dict[str, str] = field(default_factory=dict)  # e.g. pg_dump's version
    format: str = FORMAT

    def to_json(self) -> bytes:
        return (json.dumps(asdict(self), indent=2, sort_keys=True) + "\n").encode()

    @classmethod
    def from_json(cls, raw: bytes) -> Manifest:
        data = json.loads(raw)
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ValueError(f"not a {FORMAT} manifest")
        return cls(**{name: data[name] for name in cls.__dataclass_fields__ if name in data})

    @property
    def created(self) -> datetime:
        return datetime.fromisoformat(self.created_at)

    @property
    def total_rows(self) -> int:
        return sum(self.row_counts.values())


def archive_name(moment: datetime) -> str:
    return f"portal-backup-{moment.astimezone(UTC).strftime(_NAME_TIME)}.tar"


def archive_time(name: str) -> datetime | None:
    """When the archive called `name` was taken, or None if the name is not an archive's."""
    match = ARCHIVE_NAME.fullmatch(name)
    if match is None:
        return None
    try:
        return datetime.strptime(match.group(1), _NAME_TIME).replace(tzinfo=UTC)
    except ValueError:  # digits that are no date, e.g. month 13
        return None


def archives_in(directory: Path) -> list[Path]:
    """The archives in `directory` (regular files named like one), oldest first."""
    if not directory.is_dir():
        return []
    found = [
        path
        for path in directory.iterdir()
        if archive_time(path.name) is not None and path.is_file() and not path.is_symlink()
    ]
    return sorted(found, key=lambda path: path.name)


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def describe_file(path: Path) -> dict[str, str | int]:
    return {"sha256": sha256_of(path), "bytes": path.stat().st_size}


def write_archive(target: Path, manifest: Manifest, files: dict[str, Path]) -> None:
    """Write the archive to `target` (which must not exist), readable by its owner only:
    it holds every patient's details."""
    descriptor = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "wb") as raw:
        with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
            content = manifest.to_json()
            tar.addfile(_member(MANIFEST_NAME, len(content), manifest), io.BytesIO(content))
            for name, path in files.items():
                with path.open("rb") as file:
                    tar.addfile(_member(name, path.stat().st_size, manifest), file)
        raw.flush()
        os.fsync(raw.fileno())


def _member(name: str, size: int, manifest: Manifest) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.size = size
    member.mode = 0o600
    member.mtime = int(manifest.created.timestamp())
    return member


def read_manifest(archive: Path) -> Manifest:
    """The archive's manifest (its first member), without reading the rest."""
    try:
        with tarfile.open(archive, mode="r:") as tar:
            member = tar.next()
            if member is None or member.name != MANIFEST_NAME or not member.isfile():
                raise BackupError(f"{archive.name}: {MANIFEST_NAME} is missing")
            content = tar.extractfile(member).read()
        return Manifest.from_json(content)
    except (OSError, tarfile.TarError, ValueError, TypeError, KeyError) as problem:
        raise BackupError(f"{archive.name} is not a readable backup archive ({problem})") from None


def extract_verified(archive: Path, into: Path) -> tuple[Manifest, dict[str, Path]]:
    """Check every file in `archive` against the manifest's checksums, copying each into
    `into`; return the manifest and where each file went. Refuses (BackupError) an
    archive with a file that is missing, unexpected or does not match."""
    manifest = read_manifest(archive)
    expected = dict(manifest.files)
    extracted: dict[str, Path] = {}
    try:
        with tarfile.open(archive, mode="r:") as tar:
            for member in tar:
                if member.name == MANIFEST_NAME:
                    continue
                if member.name not in expected or not member.isfile():
                    raise BackupError(
                        f"{archive.name} holds {member.name!r}, which its manifest does not list"
                    )
                # Before copying a byte: a crafted sparse member could expand without end.
                if member.issparse() or member.size != expected[member.name]["bytes"]:
                    raise BackupError(
                        f"{archive.name}: {member.name} is not the size its manifest says "
                        "(the archive is damaged or was changed). Nothing was restored."
                    )
                # Written under our own name for it, never the member's path.
                target = into / f"member-{len(extracted)}"
                digest = hashlib.sha256()
                with tar.extractfile(member) as source, target.open("wb") as copy:
                    while chunk := source.read(_CHUNK):
                        digest.update(chunk)
                        copy.write(chunk)
                wanted = expected[member.name]
                if digest.hexdigest() != wanted["sha256"] or member.size != wanted["bytes"]:
                    raise BackupError(
                        f"{archive.name}: {member.name} does not match its checksum in the "
                        "manifest (the archive is damaged or was changed). Nothing was restored."
                    )
                extracted[member.name] = target
    except (OSError, tarfile.TarError) as problem:
        raise BackupError(f"{archive.name} is not a readable backup archive ({problem})") from None
    missing = sorted(set(expected) - set(extracted))
    if missing:
        raise BackupError(f"{archive.name} lacks {', '.join(missing)}, which its manifest lists")
    if manifest.database_file not in extracted:
        raise BackupError(f"{archive.name} holds no database file")
    return manifest, extracted
