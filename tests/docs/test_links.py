"""The mkdocs site builds in strict mode: every nav entry exists, every page is in the nav, and
every relative link (and its #anchor) in the docs and the README resolves."""

from __future__ import annotations

import re
import unicodedata
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
PAGES = sorted(DOCS.glob("**/*.md"))
_LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")
_NAV_ENTRY = re.compile(r"^\s*-\s*(?:[^:]+:\s*)?([\w./-]+\.md)\s*$")


def _nav_pages() -> list[str]:
    lines = (ROOT / "mkdocs.yml").read_text("utf-8").splitlines()
    start = lines.index("nav:")
    pages = []
    for line in lines[start + 1 :]:
        if line and not line.startswith(" "):
            break
        match = _NAV_ENTRY.match(line)
        if match:
            pages.append(match.group(1))
    return pages


def _prose(text: str) -> str:
    """The text outside fenced code blocks."""
    kept, fenced = [], False
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            fenced = not fenced
            continue
        if not fenced:
            kept.append(line)
    return "\n".join(kept)


def _slug(heading: str) -> str:
    # Python-Markdown's toc slugify, which mkdocs uses (and GitHub's agrees on these headings).
    text = re.sub(r"`([^`]*)`", r"\1", heading)
    text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^\w\s-]", "", text).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def _anchors(page: Path) -> set[str]:
    prose = _prose(page.read_text("utf-8"))
    headings = re.findall(r"^#{1,6}\s+(.+?)\s*$", prose, re.M)
    # A mkdocstrings directive (``::: dcr_middleware.Settings``) renders a heading whose anchor
    # is the object's path; its members' anchors extend it (checked by the strict build).
    objects = re.findall(r"^::: ([\w.]+)\s*$", prose, re.M)
    return {_slug(heading) for heading in headings} | set(objects)


def _has_anchor(target: Path, anchor: str) -> bool:
    anchors = _anchors(target)
    return anchor in anchors or any(anchor.startswith(f"{a}.") for a in anchors if "." in a)


def _links(page: Path) -> list[str]:
    return _LINK.findall(_prose(page.read_text("utf-8")))


def test_docs_nav_entries_exist_and_cover_every_page() -> None:
    nav = _nav_pages()
    assert nav, "mkdocs.yml has no nav entries"
    assert [p for p in nav if not (DOCS / p).is_file()] == []
    assert sorted(str(p.relative_to(DOCS)) for p in PAGES) == sorted(nav)


@pytest.mark.parametrize("page", [*PAGES, ROOT / "README.md"], ids=lambda p: p.name)
def test_docs_relative_links_resolve(page: Path) -> None:
    broken = []
    for link in _links(page):
        if re.match(r"^[a-z][a-z0-9+.-]*:", link):  # http:, https:, mailto: ...
            continue
        path, _, anchor = link.partition("#")
        target = (page.parent / path).resolve() if path else page
        if not target.is_file():
            broken.append(f"{link}: no such file")
        elif page.is_relative_to(DOCS) and not target.is_relative_to(DOCS):
            broken.append(f"{link}: outside docs/ (mkdocs cannot resolve it)")
        elif anchor and target.suffix == ".md" and not _has_anchor(target, anchor):
            broken.append(f"{link}: no heading with that anchor")
    assert broken == []
