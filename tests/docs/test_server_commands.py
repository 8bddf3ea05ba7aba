"""Every server command the docs, the README and the examples give is safe as written.

uvicorn, and gunicorn with ``uvicorn_worker.UvicornWorker``, trust ``X-Forwarded-For`` from
``127.0.0.1`` by default and rewrite the client address before the middleware runs: copied as
written, a command without the flag that turns that off lets a client behind a local proxy that
passes its header through choose its own rate-limit bucket. So every command that starts one of
them (a line naming ``module:attribute`` after ``uvicorn`` or ``UvicornWorker``) carries the flag.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCES = sorted(
    [ROOT / "README.md", *(ROOT / "docs").glob("**/*.md"), *(ROOT / "examples").glob("**/*.py")]
)
# `uvicorn [options] module:attribute`, not the prose "uvicorn workers" or "uvicorn.run(...)".
_UVICORN = re.compile(r"(?<![\w./-])uvicorn((?:\s+[^\s`|:]+)*?\s+[\w.]+:\w+)")
_UVICORN_WORKER = re.compile(r"gunicorn\s[^`|\n]*UvicornWorker[^`|\n]*\s[\w.]+:\w+")


def _commands() -> list[tuple[str, str]]:
    found = []
    for path in SOURCES:
        for line in path.read_text("utf-8").splitlines():
            if "pip install" in line:
                continue
            for match in _UVICORN_WORKER.finditer(line):
                found.append((path.relative_to(ROOT).as_posix(), match.group()))
            if "UvicornWorker" in line:
                continue
            for match in _UVICORN.finditer(line):
                found.append((path.relative_to(ROOT).as_posix(), match.group()))
    return found


COMMANDS = _commands()


def test_server_commands_are_found() -> None:
    # The README's and the quick start's no-code-change commands, at least.
    files = {file for file, _ in COMMANDS}
    assert {"README.md", "docs/quickstart.md", "docs/deployment.md"} <= files
    assert len(COMMANDS) >= 15


@pytest.mark.parametrize(("file", "command"), COMMANDS, ids=[f"{f}:{c}" for f, c in COMMANDS])
def test_server_command_turns_the_server_proxy_handling_off(file: str, command: str) -> None:
    if "UvicornWorker" in command:
        # gunicorn has no --no-proxy-headers; the worker passes this setting on to uvicorn.
        assert "--forwarded-allow-ips ''" in command or "-c examples/gunicorn.conf.py" in command
    else:
        assert "--no-proxy-headers" in command or "--forwarded-allow-ips" in command
