"""``dcr-middleware check`` as a preflight: what the settings name is imported (``DCR_APP``,
``DCR_EVENT_HOOK``), the app's interface is matched to its entry point, the extras are looked
for, unknown ``DCR_*`` variables are named with a suggestion, the app serving ``DCR_PATH`` is
reported, and Redis is pinged within the configured timeouts. Exit status: 0 usable, 1 Redis
unreachable, 2 invalid (docs/cli.md). Run as subprocesses with a clean environment.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support import APPS_DIR, HOST

from dcr_middleware.cli import build_parser
from dcr_middleware.cli import check as cli_check


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str


@pytest.fixture
def run(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., Done]:
    """``dcr-middleware check`` in process, with ``DCR_*`` variables given as keywords only
    (``os.environ`` is not read) and the integration apps importable."""
    monkeypatch.syspath_prepend(str(APPS_DIR))

    def _run(*args: str, hide_prometheus: bool = False, **extra: str) -> Done:
        if hide_prometheus:  # as if the extra were not installed
            monkeypatch.setitem(sys.modules, "prometheus_client", None)
        parsed = build_parser().parse_args(["check", *args])
        code = cli_check.check(parsed, environ=extra)
        out = capsys.readouterr()
        return Done(code, out.out, out.err)

    return _run


def report(run: Callable[..., Done], *args: str, **extra: Any) -> dict[str, Any]:
    parsed: dict[str, Any] = json.loads(run("--json", *args, **extra).stdout)
    return parsed


@pytest.mark.parametrize(
    ("extra", "hide", "problem"),
    [
        pytest.param(
            {"DCR_METRICS": "true"},
            True,
            "DCR_METRICS: needs the prometheus_client",
            id="metrics-extra",
        ),
        pytest.param(
            {"DCR_EVENT_HOOK": "nosuch.mod:fn"},
            False,
            "DCR_EVENT_HOOK: cannot import 'nosuch.mod'",
            id="hook",
        ),
        pytest.param(
            {"DCR_APP": "nosuch:app"}, False, "DCR_APP: cannot import 'nosuch'", id="app-module"
        ),
        pytest.param(
            {"DCR_APP": "dcr_it_apps:nothing"},
            False,
            "DCR_APP: 'dcr_it_apps' has no attribute",
            id="app-attr",
        ),
    ],
)
def test_check_refuses_what_would_fail_at_startup(
    run: Callable[..., Done], extra: dict[str, str], hide: bool, problem: str
) -> None:
    done = run(hide_prometheus=hide, **extra)
    assert done.returncode == 2, done.stdout + done.stderr
    assert problem in done.stderr
    assert "configuration: ok" not in done.stdout
    parsed = report(run, hide_prometheus=hide, **extra)
    assert parsed["ok"] is False
    assert any(problem in p for p in parsed["problems"])


def test_check_metrics_with_prometheus_installed_is_ok(run: Callable[..., Done]) -> None:
    assert run(DCR_METRICS="true").returncode == 0


def test_check_names_unknown_variables_with_a_suggestion(run: Callable[..., Done]) -> None:
    done = run(DCR_RATE_LIMT="3/hour")
    assert done.returncode == 0, done.stderr
    expected = "unknown setting DCR_RATE_LIMT (did you mean DCR_RATE_LIMIT?): ignored"
    assert f"WARNING: {expected}" in done.stdout
    assert "ignoring unknown settings" not in done.stderr  # said once, by check
    assert report(run, DCR_RATE_LIMT="3/hour")["warnings"] == [expected]


@pytest.mark.parametrize(
    ("app", "interface", "entry_point"),
    [
        pytest.param("dcr_it_apps:wsgi_app", "wsgi", "dcr_middleware.wsgi:app", id="wsgi"),
        pytest.param("dcr_it_lazy:starlette_app", "asgi", "dcr_middleware.asgi:app", id="asgi"),
    ],
)
def test_check_reports_the_entry_point_that_fits(
    run: Callable[..., Done], app: str, interface: str, entry_point: str
) -> None:
    done = run(DCR_APP=app)
    assert done.returncode == 0, done.stderr
    assert f"app: {interface.upper()}, served by {entry_point}" in done.stdout
    parsed = report(run, DCR_APP=app)
    assert (parsed["app_interface"], parsed["entry_point"]) == (interface, entry_point)
    assert run("--entry", interface, DCR_APP=app).returncode == 0


@pytest.mark.parametrize(
    ("app", "entry", "advice"),
    [
        pytest.param("dcr_it_apps:wsgi_app", "asgi", "dcr_middleware.wsgi:app", id="wsgi-as-asgi"),
        pytest.param("dcr_it_apps:asgi_app", "wsgi", "dcr_middleware.asgi:app", id="asgi-as-wsgi"),
    ],
)
def test_check_entry_mismatch_exits_2_naming_the_other_entry_point(
    run: Callable[..., Done], app: str, entry: str, advice: str
) -> None:
    done = run("--entry", entry, DCR_APP=app)
    assert done.returncode == 2
    assert f"serve it with {advice}" in done.stderr


def test_check_entry_without_app_exits_2(run: Callable[..., Done]) -> None:
    done = run("--entry", "asgi")
    assert done.returncode == 2
    assert "DCR_APP: required" in done.stderr


def test_check_warns_when_the_app_serves_the_registration_path(run: Callable[..., Done]) -> None:
    done = run(DCR_APP="dcr_it_lazy:signup_wsgi")
    assert done.returncode == 0, done.stderr
    assert (
        "WARNING: the wrapped app serves /register itself (GET, HEAD, POST, OPTIONS)" in done.stdout
    )
    assert any(
        "DCR_PATH=/oauth/register" in w
        for w in report(run, DCR_APP="dcr_it_lazy:signup_wsgi")["warnings"]
    )
    quiet = run(DCR_APP="dcr_it_lazy:signup_wsgi", DCR_PATH="/oauth/register")
    assert "serves" not in quiet.stdout


@pytest.fixture
def silent_redis() -> Iterator[int]:
    """A loopback port that accepts connections and never answers (a frozen Redis)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        sock.listen(16)
        yield sock.getsockname()[1]


def test_check_pings_redis_within_the_configured_timeouts(
    run: Callable[..., Done], silent_redis: int
) -> None:
    url = f"redis://{HOST}:{silent_redis}/0"
    done = run(DCR_REDIS_URL=url, DCR_REDIS_TIMEOUT="0.3", DCR_REDIS_CONNECT_TIMEOUT="0.2")
    assert done.returncode == 1, done.stderr
    assert f"cannot reach Redis at {url}: TimeoutError" in done.stderr
    assert "(DCR_REDIS_CONNECT_TIMEOUT=0.2s, DCR_REDIS_TIMEOUT=0.3s)" in done.stderr


def test_check_as_a_command_exits_2_for_a_missing_extra() -> None:
    """The console path end to end: a fresh interpreter where prometheus_client is missing."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCR_")}
    env["DCR_METRICS"] = "true"
    code = (
        "import sys; sys.modules['prometheus_client'] = None\n"
        "from dcr_middleware.cli import main\n"
        "sys.exit(main(['check']))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "DCR_METRICS: needs the prometheus_client package" in done.stderr


def test_check_exit_statuses_are_documented() -> None:
    cli_md = (Path(__file__).resolve().parents[2] / "docs" / "cli.md").read_text()
    section = cli_md.split("## `check`", 1)[1].split("\n## ", 1)[0]
    for status in ("| `0` |", "| `1` |", "| `2` |"):
        assert status in section
