"""A bad configuration stops real servers at startup, with one clear message and exit status 3.

Covers the lazily built Starlette/FastAPI stack (``app.add_middleware``, built at the lifespan
startup), the ``DCR_APP`` entry points under uvicorn and gunicorn (a worker that exits 3 makes
gunicorn's arbiter stop, ``WORKER_BOOT_ERROR``), an app of the wrong interface for its entry
point, ``DCR_REDIS_CHECK_ON_START``, the startup warning when the app serves ``DCR_PATH``, and
the demo's readable log lines. Every process runs in its own session and is killed with its
children if it outlives its deadline.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import httpx
import pytest
from support import (
    CONFIDENTIAL,
    HOST,
    JSON,
    Server,
    free_port,
    register,
    server_command,
    server_env,
)

pytestmark = pytest.mark.server

EXIT_TIMEOUT = 90.0
STARTUP_FAILURE = 3
BAD_RATE = {"DCR_RATE_LIMIT": "10/minuet"}


def _exits(argv: Sequence[str], env: Mapping[str, str]) -> tuple[int, str]:
    """Run a server that must refuse to start: its exit status and its whole output. Its
    temporary directory (where gunicorn workers elect the one that reports) is thrown away."""
    with tempfile.TemporaryDirectory() as scratch:
        return _exits_in(argv, {**env, "TMPDIR": scratch})


def _exits_in(argv: Sequence[str], env: Mapping[str, str]) -> tuple[int, str]:
    process = subprocess.Popen(
        argv,
        env=dict(env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # the server and its workers, killed together if need be
    )
    try:
        output, _ = process.communicate(timeout=EXIT_TIMEOUT)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        output, _ = process.communicate()
        pytest.fail(f"the server started despite the bad configuration:\n{output.decode()[-3000:]}")
    return process.returncode, output.decode(errors="replace")


def _lazy_command(kind: str, target: str, port: int, args: Sequence[str] = ()) -> list[str]:
    """A server of the app ``target`` itself (not the DCR_APP entry points)."""
    if kind == "uvicorn":
        return [sys.executable, "-m", "uvicorn", target, "--host", HOST, "--port", str(port)]
    argv = server_command("gunicorn-uvicorn", port, args=args)
    return [target if a == "dcr_middleware.asgi:app" else a for a in argv]


# --- the lazily built stack -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "target", "args"),
    [
        pytest.param("uvicorn", "dcr_it_lazy:starlette_app", [], id="uvicorn-starlette"),
        pytest.param("uvicorn", "dcr_it_lazy:fastapi_app", [], id="uvicorn-fastapi"),
        pytest.param(
            "gunicorn-uvicorn", "dcr_it_lazy:fastapi_app", [], id="gunicorn-uvicorn-fastapi"
        ),
        # Workers whose lifespan startups fail together: one reports and exits 3, the others
        # exit 0 once the arbiter has reaped it (two exiting 3 at once made gunicorn's arbiter
        # exit 1 with a traceback, seen with 2 workers).
        *(
            pytest.param(
                "gunicorn-uvicorn",
                "dcr_it_lazy:fastapi_app",
                ["-w", "4"],
                id=f"gunicorn-uvicorn-fastapi-4-workers-{n}",
            )
            for n in range(3)
        ),
    ],
)
def test_startup_add_middleware_bad_setting_stops_the_server(
    kind: str, target: str, args: list[str]
) -> None:
    code, output = _exits(
        _lazy_command(kind, target, free_port(), args), server_env("uvicorn", None, BAD_RATE)
    )
    assert code == STARTUP_FAILURE, output[-3000:]
    assert "DCR_RATE_LIMIT: unknown unit 'minuet'" in output
    assert "second, minute, hour, day, week, month, year" in output
    assert "Application startup complete" not in output
    assert "Traceback" not in output


# --- the DCR_APP entry points ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "args"),
    [
        pytest.param("uvicorn", [], id="uvicorn"),
        pytest.param("gunicorn", [], id="gunicorn"),
        pytest.param("gunicorn", ["--preload"], id="gunicorn-preload"),
        pytest.param("gunicorn-uvicorn", [], id="gunicorn-uvicorn"),
        # Workers that fail together: one reports and exits 3, the others wait for the halt
        # (two exiting 3 at once made gunicorn's arbiter crash with status 1).
        *(pytest.param("gunicorn", ["-w", "4"], id=f"gunicorn-4-workers-{n}") for n in range(3)),
    ],
)
def test_startup_entry_point_bad_setting_one_message_exit_3(kind: str, args: list[str]) -> None:
    code, output = _exits(
        server_command(kind, free_port(), args=args), server_env(kind, None, BAD_RATE)
    )
    assert code == STARTUP_FAILURE, output[-3000:]
    assert "Traceback" not in output
    assert output.count("invalid dcr-middleware configuration") == 1, output
    assert "DCR_RATE_LIMIT: unknown unit 'minuet'" in output


@pytest.mark.parametrize(
    ("kind", "app", "advice"),
    [
        pytest.param("uvicorn", "dcr_it_apps:wsgi_app", "dcr_middleware.wsgi:app", id="uvicorn"),
        pytest.param(
            "gunicorn-uvicorn", "dcr_it_apps:wsgi_app", "dcr_middleware.wsgi:app", id="g-uvicorn"
        ),
        pytest.param("gunicorn", "dcr_it_apps:asgi_app", "dcr_middleware.asgi:app", id="gunicorn"),
    ],
)
def test_startup_entry_point_refuses_an_app_of_the_other_interface(
    kind: str, app: str, advice: str
) -> None:
    code, output = _exits(
        server_command(kind, free_port()), server_env(kind, None, {"DCR_APP": app})
    )
    assert code == STARTUP_FAILURE, output[-3000:]
    assert f"serve it with {advice}" in output
    assert "Traceback" not in output


# --- DCR_REDIS_CHECK_ON_START ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind", ["uvicorn", "gunicorn", "gunicorn-uvicorn", "lazy-starlette"], ids=str
)
def test_startup_redis_check_refuses_an_unreachable_redis(kind: str) -> None:
    url = f"redis://{HOST}:{free_port()}/0"
    extra = {"DCR_REDIS_URL": url, "DCR_REDIS_CHECK_ON_START": "true"}
    if kind == "lazy-starlette":
        argv = _lazy_command("uvicorn", "dcr_it_lazy:starlette_app", free_port())
        env = server_env("uvicorn", None, extra)
    else:
        argv, env = server_command(kind, free_port()), server_env(kind, None, extra)
    code, output = _exits(argv, env)
    assert code == STARTUP_FAILURE, output[-3000:]
    assert f"DCR_REDIS_CHECK_ON_START: cannot reach Redis at {url}" in output
    assert "Traceback" not in output


@pytest.mark.redis
@pytest.mark.parametrize("kind", ["uvicorn", "gunicorn"])
def test_startup_redis_check_passes_with_redis_up(
    kind: str, serve: Callable[..., Server], redis_url: str
) -> None:
    server = serve(kind, redis_url, env={"DCR_REDIS_CHECK_ON_START": "true"})
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert register(client).status_code == 201


# --- DCR_PATH served by the wrapped app -----------------------------------------------------------


def test_startup_log_warns_when_the_app_serves_the_registration_path(
    serve: Callable[..., Server],
) -> None:
    server = serve("gunicorn", None, env={"DCR_APP": "dcr_it_lazy:signup_wsgi"}, args=["-w", "1"])
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/register").text == "sign-up form"  # GET still reaches the app
        assert (
            client.post("/register", content=json.dumps(CONFIDENTIAL), headers=JSON).status_code
            == 201
        )
    output = server.output()
    assert "the wrapped app serves /register itself (GET, HEAD, POST, OPTIONS)" in output
    assert "set DCR_PATH to another path" in output


def test_startup_log_silent_when_the_path_is_elsewhere(serve: Callable[..., Server]) -> None:
    env = {"DCR_APP": "dcr_it_lazy:signup_wsgi", "DCR_PATH": "/oauth/register"}
    server = serve("gunicorn", None, env=env, args=["-w", "1"])
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.post("/register", content=b"{}", headers=JSON).text == "sign-up form"
    assert "serves /oauth/register itself" not in server.output()
    assert "serves /register itself" not in server.output()


# --- dcr-middleware serve: readable log lines -----------------------------------------------------


def test_startup_demo_logs_the_middleware_events_readably(tmp_path: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCR_")}
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "dcr_middleware", "serve", "--port", str(port)],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        server = Server("serve", port, process, log_path, log)
        try:
            server.wait_ready()
            with httpx.Client(base_url=server.url, timeout=10) as client:
                created = register(client)
                assert created.status_code == 201
                refused = client.post(
                    "/register", content=b"x", headers={"Content-Type": "text/plain"}
                )
                assert refused.status_code == 415
            deadline = time.monotonic() + 30
            while "request refused" not in server.output() and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            server.stop()
    lines = log_path.read_text(errors="replace").splitlines()
    client_id = created.json()["client_id"]
    # time, level, logger, message: "2026-12-07 05:08:35,673 INFO     dcr_middleware: ..."
    registered = [line for line in lines if f"client registered: client_id={client_id}" in line]
    assert len(registered) == 1, lines
    date, clock, level, logger = registered[0].split()[:4]
    assert date[:2] == "20" and clock.count(":") == 2
    assert (level, logger) == ("INFO", "dcr_middleware:")
    assert any(" WARNING  dcr_middleware: DCR_REDIS_URL is not set" in line for line in lines)
    assert any(
        " INFO     dcr_middleware: request refused: invalid_request" in line for line in lines
    )
