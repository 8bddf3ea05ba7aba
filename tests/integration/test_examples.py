"""The examples under ``examples/``, each started with the command its docstring gives.

Each server is a real uvicorn or gunicorn process, run from the repository root as the docstring
says (plus a free loopback port), storing clients in the session's ``redis-server``; the test
registers a client and reads it back with ``ClientStore``. ``examples/.env.example`` is checked
against ``Settings``: every variable once, every documented default the code's default.
"""

from __future__ import annotations

import ast
import dataclasses
import os
import re
import shlex
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import redis
from support import (
    CONFIDENTIAL,
    GUNICORN_VERSION,
    HOST,
    READY_TIMEOUT,
    Server,
    free_port,
    launch,
    register,
)

from dcr_middleware import ClientStore, Settings
from dcr_middleware.core.settings import env_name

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
ENV_EXAMPLE = EXAMPLES / ".env.example"
METADATA_PATH = "/.well-known/oauth-authorization-server"


@dataclass(frozen=True)
class Example:
    """An example started by ``command`` (``NAME=value`` prefixes become the environment)."""

    file: str
    command: str
    documented: bool = True  # ``command`` is a line of ``file``'s docstring
    metadata: bool = False  # the app serves RFC 8414 metadata
    worker: str | None = None  # the gunicorn worker class the log must name
    csrf: bool = False  # the app refuses a POST without a CSRF token (Django's CsrfViewMiddleware)


EXAMPLE_CASES = {
    "starlette": Example(
        "starlette_app.py",
        "uvicorn --no-proxy-headers --app-dir examples starlette_app:app",
        metadata=True,
    ),
    "fastapi": Example(
        "fastapi_app.py",
        "uvicorn --no-proxy-headers --app-dir examples fastapi_app:app",
        metadata=True,
    ),
    "flask": Example("flask_app.py", "gunicorn --chdir examples flask_app:app", metadata=True),
    "django-wsgi": Example(
        "django_site/wsgi.py",
        "gunicorn --chdir examples django_site.wsgi:application",
        metadata=True,
        csrf=True,
    ),
    "django-asgi": Example(
        "django_site/asgi.py",
        "uvicorn --no-proxy-headers --app-dir examples django_site.asgi:application",
        metadata=True,
        csrf=True,
    ),
    "django-plain-wsgi": Example(
        "django_site/wsgi_plain.py",
        "DCR_APP=django_site.wsgi_plain:application gunicorn --chdir examples"
        " dcr_middleware.wsgi:app",
        metadata=True,
        csrf=True,
    ),
    "plain-wsgi": Example(
        "plain_wsgi.py",
        "DCR_APP=plain_wsgi:app gunicorn --chdir examples dcr_middleware.wsgi:app",
    ),
    "plain-asgi": Example(
        "plain_asgi.py",
        "DCR_APP=plain_asgi:app uvicorn --no-proxy-headers --app-dir examples"
        " dcr_middleware.asgi:app",
    ),
    "gunicorn-conf": Example(
        "gunicorn.conf.py",
        "gunicorn -c examples/gunicorn.conf.py --chdir examples flask_app:app",
        metadata=True,
        worker="gthread",
    ),
    "gunicorn-conf-asgi": Example(
        "gunicorn.conf.py",
        "DCR_APP=plain_asgi:app gunicorn -c examples/gunicorn.conf.py --chdir examples"
        " -k uvicorn_worker.UvicornWorker dcr_middleware.asgi:app",
        documented=False,
        worker="uvicorn_worker.UvicornWorker",
    ),
}
WORKERS = 2  # WEB_CONCURRENCY, read by gunicorn.conf.py


def docstring(file: str) -> str:
    doc = ast.get_docstring(ast.parse((EXAMPLES / file).read_text()))
    assert doc, f"{file} has no module docstring"
    return doc


def example_argv(command: str, port: int) -> tuple[list[str], dict[str, str]]:
    """The argv of ``command`` bound to ``127.0.0.1:port``, and its ``NAME=value`` prefixes."""
    words = shlex.split(command)
    env = {}
    while "=" in words[0]:
        name, _, value = words.pop(0).partition("=")
        env[name] = value
    tool, *args = words
    argv = [sys.executable, "-m", tool, *args]
    if tool == "uvicorn":
        return [*argv, "--host", HOST, "--port", str(port)], env
    return [
        *argv,
        "--bind",
        f"{HOST}:{port}",
        "--graceful-timeout",
        "5",
        "--timeout",
        "60",
        # gunicorn >= 27 opens a control socket in ~/.gunicorn, shared by every instance.
        *(["--no-control-socket"] if GUNICORN_VERSION >= (27,) else []),
    ], env


def example_env(redis_url: str, key_prefix: str, extra: Mapping[str, str]) -> dict[str, str]:
    """The subprocess environment: no inherited ``DCR_*``, no test apps on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCR_")}
    env.pop("PYTHONPATH", None)
    env["PYTHONUNBUFFERED"] = "1"
    env["WEB_CONCURRENCY"] = str(WORKERS)
    env["DCR_REDIS_URL"] = redis_url
    env["DCR_KEY_PREFIX"] = key_prefix
    env.update(extra)
    return env


@pytest.fixture
def start_example(
    tmp_path: Path, redis_url: str, key_prefix: str
) -> Iterator[Callable[[str, Example], Server]]:
    """Start an example as its docstring says (from the repository root); stopped at the end."""
    started: list[Server] = []

    def _start(name: str, example: Example) -> Server:
        port = free_port()
        argv, command_env = example_argv(example.command, port)
        environ = example_env(redis_url, key_prefix, command_env)
        # Waits until GET / answers 200.
        server = launch(name, argv, port=port, directory=tmp_path, env=environ, cwd=ROOT)
        started.append(server)
        return server

    try:
        yield _start
    finally:
        for server in started:
            server.stop()


@pytest.mark.parametrize("name", [n for n, e in EXAMPLE_CASES.items() if e.documented])
def test_example_command_is_the_docstring_command(name: str) -> None:
    example = EXAMPLE_CASES[name]
    lines = [line.strip() for line in docstring(example.file).splitlines()]
    assert example.command in lines
    assert "export DCR_REDIS_URL=redis://localhost:6379/0" in lines


@pytest.mark.server
@pytest.mark.redis
@pytest.mark.parametrize("name", list(EXAMPLE_CASES))
def test_example_registers_a_client_readable_by_client_store(
    name: str,
    start_example: Callable[[str, Example], Server],
    redis_url: str,
    key_prefix: str,
    redis_db: redis.Redis,
) -> None:
    example = EXAMPLE_CASES[name]
    server = start_example(name, example)
    with httpx.Client(base_url=server.url, timeout=10) as http:
        home = http.get("/")
        assert home.status_code == 200
        assert b"hello from the" in home.content  # the example app's answer, not the middleware's

        if example.csrf:  # the app's own POSTs need a token; POST /register never reaches it
            assert http.post("/").status_code == 403

        response = register(http)
        assert response.status_code == 201, response.text
        body = response.json()

        if example.metadata:
            metadata = http.get(METADATA_PATH)
            assert metadata.status_code == 200, metadata.text
            assert metadata.json()["registration_endpoint"] == server.url + "/register"

    store = ClientStore(Settings(redis_url=redis_url, key_prefix=key_prefix))
    try:
        client = store.get(body["client_id"])
        assert client is not None
        assert client.redirect_uris == CONFIDENTIAL["redirect_uris"]
        assert store.authenticate(body["client_id"], body["client_secret"]) == client
    finally:
        store.close()

    if example.worker is not None:  # gunicorn.conf.py was read: its workers and worker class
        output = booted_workers_output(server, WORKERS)
        assert f"Using worker: {example.worker}" in output, output
        assert output.count("Booting worker with pid") == WORKERS, output


def booted_workers_output(server: Server, workers: int) -> str:
    """The server's output once ``workers`` workers have booted (or the deadline passed).

    One worker may already answer while gunicorn is still forking the next, so the log is
    polled rather than read once; a wrong worker count still fails after the deadline.
    """
    deadline = time.monotonic() + READY_TIMEOUT
    output = server.output()
    while output.count("Booting worker with pid") < workers and time.monotonic() < deadline:
        time.sleep(0.05)
        output = server.output()
    return output


# --- examples/.env.example ---

_VARIABLE = re.compile(r"^# (DCR_[A-Z0-9_]+)=(.*)$")


def _env_example() -> tuple[list[str], dict[str, str]]:
    lines = ENV_EXAMPLE.read_text().splitlines()
    values = {}
    for line in lines:
        match = _VARIABLE.match(line)
        if match:
            values[match.group(1)] = match.group(2)
    return lines, values


def test_env_example_names_every_setting_exactly_once() -> None:
    lines, values = _env_example()
    mentions = Counter(re.findall(r"\bDCR_[A-Z0-9_]+\b", "\n".join(lines)))
    expected = {env_name(f.name) for f in dataclasses.fields(Settings)}
    for name in sorted(expected):
        assert mentions[name] == 1, f"{name} is named {mentions[name]} times in .env.example"
        assert name in values, f"{name} has no '# {name}=<default>' line"
    assert set(mentions) == expected, f"not settings: {sorted(set(mentions) - expected)}"


def test_env_example_explains_every_setting_on_the_line_above() -> None:
    lines, _ = _env_example()
    for index, line in enumerate(lines):
        if _VARIABLE.match(line):
            above = lines[index - 1]
            assert above.startswith("# ") and not _VARIABLE.match(above), line
            assert len(above) > len("# ") + 10, f"no explanation above {line!r}"


def test_env_example_defaults_are_the_code_defaults() -> None:
    _, values = _env_example()
    for f in dataclasses.fields(Settings):
        name = env_name(f.name)
        parsed = Settings.from_env({name: values[name]})
        assert getattr(parsed, f.name) == f.default, (name, values[name])
    assert Settings.from_env(values) == Settings()
