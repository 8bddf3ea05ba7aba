"""The pytest side of :mod:`.processes` (a plugin, loaded by ``tests/conftest.py``).

It installs the reaper (``SIGTERM``/``SIGINT`` handlers, ``atexit``, and a last sweep at
``pytest_unconfigure``), tells :func:`.processes.spawn` which test is running so that a process
started by a test without its cost marker is refused, and refuses at collection a test whose
fixtures start a Redis or a server when it lacks the marker saying so.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from . import processes

# Fixtures that start processes, and the markers a test using them (directly or through another
# fixture) must carry: a test that starts a whole topology of its own (seconds to settle, more to
# fail over) is also ``slow``. A folder's own such fixtures are added from its conftest with
# ``COSTLY_FIXTURES.update(name=(...))``.
COSTLY_FIXTURES: dict[str, tuple[str, ...]] = {
    "redis_server": ("redis",),
    "own_redis": ("redis",),
    "redis_cluster": ("redis",),
    "own_cluster": ("redis", "slow"),
    "sentinel_group": ("redis",),
    "own_sentinel_group": ("redis", "slow"),
    "serve": ("server",),
    "shared_server": ("server",),
}


def pytest_configure(config: pytest.Config) -> None:
    processes.install_signal_handlers()


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    unmarked = []
    for item in items:
        for name in getattr(item, "fixturenames", ()):
            for marker in COSTLY_FIXTURES.get(name, ()):
                if item.get_closest_marker(marker) is None:
                    unmarked.append(f"{item.nodeid} uses {name} without @pytest.mark.{marker}")
    if unmarked:
        raise pytest.UsageError(
            "tests that start processes must say so (scripts/test.sh --quick leaves them "
            "out by marker):\n  " + "\n  ".join(unmarked)
        )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_protocol(item: pytest.Item) -> Iterator[None]:
    processes.set_current_test(lambda: {mark.name for mark in item.iter_markers()})
    try:
        yield
    finally:
        processes.set_current_test(None)


def pytest_unconfigure(config: pytest.Config) -> None:
    processes.reap()
