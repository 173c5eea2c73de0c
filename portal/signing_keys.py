"""The signing keys a production portal may start with.

SECRET_KEY signs the state cookie, CSRF tokens, invitations and patient links; anyone
who knows it can forge them. So production refuses a key that is missing, shorter than
32 bytes, or published: a value written in this project's source or README (or once
written there, such as the old development default), which anyone can read.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Iterator
from pathlib import Path

from portal.config import ConfigurationError

MIN_KEY_BYTES = 32
HOW_TO_MAKE_ONE = (
    'Make one with: python -c "import secrets; print(secrets.token_urlsafe(48))" '
    "and set it in the environment."
)
PROJECT_ROOT = Path(__file__).resolve().parent.parent
# Keys that were in the source once and stay in its history for ever.
FORMERLY_PUBLISHED = frozenset({"development-only-secret-key-not-for-real-use"})
# Where a key could have been copied from: the code, its templates and the docs.
PUBLISHED_FILES = ("*.py", "*.html", "*.txt", "*.md", "*.ini", "*.toml", "*.sh", "*.cfg")


def check_signing_keys(secret_key: str | None, fallbacks: Iterable[str]) -> None:
    """Raise ConfigurationError, saying what to do, unless every key is fit to sign."""
    if not secret_key:
        raise ConfigurationError(f"SECRET_KEY is not set. {HOW_TO_MAKE_ONE}")
    for name, key in [("SECRET_KEY", secret_key)] + [
        (f"SECRET_KEY_FALLBACKS entry {n}", key) for n, key in enumerate(fallbacks, start=1)
    ]:
        if len(key.encode()) < MIN_KEY_BYTES:
            raise ConfigurationError(
                f"{name} is shorter than {MIN_KEY_BYTES} bytes, so it can be guessed. "
                + HOW_TO_MAKE_ONE
            )
        if key in FORMERLY_PUBLISHED or _appears_in_published_files(key):
            raise ConfigurationError(
                f"{name} is a value published in the portal's source or README, so anyone "
                "can forge sessions and links with it. " + HOW_TO_MAKE_ONE
            )


def _appears_in_published_files(key: str) -> bool:
    return any(key in text for text in _published_texts())


def _published_texts() -> Iterator[str]:
    folders = [PROJECT_ROOT / name for name in ("portal", "jobs", "docs", "scripts", "tests")]
    files = [PROJECT_ROOT / "README.md", PROJECT_ROOT / "pyproject.toml"]
    for folder in folders:
        if folder.is_dir():
            for pattern in PUBLISHED_FILES:
                files.extend(folder.rglob(pattern))
    for path in files:
        if path.is_file():
            yield path.read_text(encoding="utf-8", errors="ignore")


def instance_secret_key(instance_path: str) -> str:
    """A random key made once for this instance folder (development only)."""
    path = Path(instance_path) / "development-secret-key"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_urlsafe(48))
        path.chmod(0o600)
    return path.read_text().strip()
