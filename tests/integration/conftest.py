"""Fixtures of the integration suite: the figures it measures.

The real Redis servers and HTTP servers it uses are the shared fixtures of ``tests/support``
(``support/fixtures.py``): without ``redis-server`` the Redis tests are skipped, and under
``CI=true`` they fail.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator

import pytest


@pytest.fixture(scope="session")
def _figures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, object]]:
    collected: dict[str, object] = {}
    yield collected
    if collected:
        path = tmp_path_factory.getbasetemp() / "integration-figures.json"
        path.write_text(json.dumps(collected, indent=2, sort_keys=True))
        print(f"\n[figures] written to {path}")


@pytest.fixture
def record_figure(
    _figures: dict[str, object], record_property: Callable[[str, object], None]
) -> Callable[[str, object], None]:
    """Keep a measured figure: a test property (JUnit XML) and one JSON file per session
    (``<basetemp>/integration-figures.json``)."""

    def _record(name: str, value: object) -> None:
        record_property(name, value)
        _figures[name] = value

    return _record
