"""docs/deploy.md's settings table is the one scripts/settings_table.py makes from the code.

Run `python scripts/settings_table.py --write` after adding or changing a setting.
"""

from __future__ import annotations

import os
import re
import runpy
import sys
from collections.abc import Iterator
from pathlib import Path
from unittest import mock

import pytest

from portal.config import ConfigurationError
from portal.signing_keys import check_signing_keys

PROJECT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(PROJECT / "scripts"))
import settings_table  # noqa: E402 - a script, not a package

ENV_EXAMPLE = PROJECT / "docs" / "deploy" / "portal.env.example"


def documented_table() -> str:
    guide = settings_table.GUIDE.read_text(encoding="utf-8")
    start, end = guide.index(settings_table.START), guide.index(settings_table.END)
    return guide[start + len(settings_table.START) : end].strip("\n") + "\n"


def every_setting() -> Iterator[tuple[settings_table.Group, settings_table.Setting]]:
    for group in settings_table.read_settings():
        for setting in group.settings:
            yield group, setting


def test_the_guide_holds_the_table_the_code_makes():
    assert documented_table() == settings_table.settings_table(), (
        "docs/deploy.md's settings table is out of date: "
        "run `python scripts/settings_table.py --write`"
    )


def test_every_setting_says_what_it_means():
    uncommented = [
        f"{group.source}:{setting.line} {setting.name}"
        for group, setting in every_setting()
        if not group.comment and not setting.inline_comment
    ]
    assert not uncommented, (
        "Settings read from the environment without a comment right above them (or a group"
        f" of settings under one): {uncommented}"
    )


class RecordingEnvironment(dict):
    """An empty environment that notes every name the code asks it for."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key, default=None):
        self.asked.add(key)
        return super().get(key, default)

    def __getitem__(self, key):
        self.asked.add(key)
        return super().__getitem__(key)

    def __contains__(self, key):
        self.asked.add(key)
        return super().__contains__(key)


def test_the_table_lists_every_name_the_code_reads_from_the_environment():
    # What the script found by reading the source, against what running it asks for.
    import gunicorn.glogging  # noqa: F401 - gunicorn reads variables of its own on import

    environment = RecordingEnvironment()
    with mock.patch.object(os, "environ", environment):
        config = runpy.run_path(str(settings_table.CONFIG))
        config["config_from_environment"]()
        runpy.run_path(str(settings_table.GUNICORN))
    found = {setting.name for _, setting in every_setting()}
    assert environment.asked == found


def test_defaults_read_as_the_code_sets_them():
    rows = {
        row.split(" | ")[0].strip("| `"): row.split(" | ")[1]
        for row in settings_table.settings_table().splitlines()
        if row.startswith("| `") and "<br>" not in row
    }
    assert rows["PORTAL_ENV"] == "`production`"
    assert rows["SECRET_KEY"] == "unset"
    assert rows["SECRET_KEY_FALLBACKS"] == "empty"
    assert rows["SESSION_COOKIE_SECURE"] == "on; development: off"
    assert rows["MAIL_BACKEND"] == "`smtp`; development: `record`"
    assert rows["OUTBOX_CLAIM_SECONDS"] == "300 (`15 * MAIL_TIMEOUT_SECONDS`)"
    assert rows["GUNICORN_WORKERS"] == "`min(len(os.sched_getaffinity(0)), 4)`; development: 2"


def example_environment(*, commented: bool = False) -> dict[str, str]:
    """docs/deploy/portal.env.example's settings (and the commented-out ones, if asked),
    read as systemd and sh read them: one KEY=value a line, double quotes removed."""
    settings = {}
    pattern = r"#?([A-Z][A-Z0-9_]*)=(.*)" if commented else r"([A-Z][A-Z0-9_]*)=(.*)"
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        match = re.fullmatch(pattern, line.strip())
        if match:
            settings[match[1]] = match[2].strip('"')
    return settings


def test_the_example_environment_file_sets_only_real_settings():
    named = set(example_environment(commented=True))
    assert named <= {setting.name for _, setting in every_setting()}


def test_the_example_secret_key_is_refused_if_left_in_place():
    with pytest.raises(ConfigurationError, match="published"):
        check_signing_keys(example_environment()["SECRET_KEY"], [])
