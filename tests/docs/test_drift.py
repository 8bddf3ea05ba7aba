"""Drift between the docs and the code that the other doc tests do not catch (issue 14)."""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path

import yaml

with warnings.catch_warnings():  # WebOb 1.8 imports the deprecated stdlib ``cgi``
    warnings.filterwarnings("ignore", "'cgi' is deprecated", DeprecationWarning)
    from dcr_middleware import Settings
    from dcr_middleware.cli import build_parser
    from dcr_middleware.core.settings import env_name

from .deliberate import NOT_SETTINGS

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SETTINGS = {env_name(f.name) for f in dataclasses.fields(Settings)}
_VARIABLE = re.compile(r"\bDCR_[A-Z0-9_]*[A-Z0-9]\b")


def test_docs_name_only_settings_that_exist() -> None:
    unknown = sorted(
        f"{page.relative_to(ROOT)}: {name}"
        for page in PAGES
        for name in set(_VARIABLE.findall(page.read_text("utf-8")))
        if name not in SETTINGS | NOT_SETTINGS
    )
    assert unknown == []


def test_docs_call_no_setting_planned_or_unread() -> None:
    # configuration.md once listed DCR_CLIENT_IDLE_TTL and the software-statement settings as
    # "not read", after they were implemented.
    claims = re.compile(r"\b(not read|planned|not supported|not implemented)\b", re.I)
    fenced = re.compile(r"^ *```.*?^ *```", re.M | re.S)
    stale = []
    for page in PAGES:
        for sentence in re.split(r"(?<=[.|])\s+", fenced.sub("", page.read_text("utf-8"))):
            claim = claims.search(sentence)
            if claim:
                named = set(_VARIABLE.findall(sentence)) & SETTINGS
                stale += [
                    f"{page.relative_to(ROOT)}: {n}: {claim[0]!r} in {sentence!r}" for n in named
                ]
    assert stale == []


def test_index_describes_every_cli_command() -> None:
    commands = next(
        a for a in build_parser()._actions if a.dest == "command"
    ).choices  # the subcommands
    line = next(
        line
        for line in (ROOT / "docs" / "index.md").read_text("utf-8").split("\n- ")
        if "(cli.md)" in line
    )
    missing = [name for name in commands or () if f"`{name}`" not in line and name not in line]
    assert missing == []


def test_mkdocs_sets_site_and_repo_url() -> None:
    # Without site_url mkdocs writes a sitemap with no URLs.
    config = yaml.safe_load((ROOT / "mkdocs.yml").read_text("utf-8"))
    assert config["site_url"].startswith("https://") and config["site_url"].endswith("/")
    assert config["repo_url"].startswith("https://github.com/")
