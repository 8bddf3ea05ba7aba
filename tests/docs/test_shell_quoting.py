"""Shell lines in the docs quote every ``DCR_*`` value holding a ``;``: unquoted, a shell ends
the command there (``DCR_RATE_LIMIT=3/minute;10/hour cmd`` sets ``3/minute`` and runs
``10/hour cmd``). ``examples/.env.example`` is a dotenv file, not a shell script: not checked."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted(
    [ROOT / "README.md", *ROOT.glob("docs/**/*.md"), *ROOT.glob("examples/**/*.py")],
    key=str,
)
# NAME=value where value starts unquoted and runs into a ';' before any white space.
UNQUOTED = re.compile(r"\bDCR_[A-Z0-9_]+=(?![\"'])[^\s`\"']*;")


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_docs_quote_values_with_a_semicolon(path: Path) -> None:
    bad = [
        f"{path.name}:{number}: {line.strip()}"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if UNQUOTED.search(line)
    ]
    assert not bad, "\n".join(bad)


def test_the_check_finds_an_unquoted_value() -> None:
    assert UNQUOTED.search("$ DCR_RATE_LIMIT=3/minute;10/hour uvicorn app:app")
    assert not UNQUOTED.search("$ DCR_RATE_LIMIT='3/minute;10/hour' uvicorn app:app")
    assert not UNQUOTED.search("$ DCR_RATE_LIMIT=3/minute,10/hour uvicorn app:app")
