"""Examples of docs/cli.md that need a real Redis, compared with what the command prints."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.redis

CLI_PAGE = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def _example_after(command: str) -> dict[str, object]:
    lines = CLI_PAGE.read_text("utf-8").splitlines()
    index = lines.index(f"$ {command}")
    example: dict[str, object] = json.loads(lines[index + 1])
    return example


def test_check_json_example_has_the_keys_the_command_prints(redis_url: str) -> None:
    # issue 14: the example lacked keys (topology, where) that the command prints.
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCR_")}
    env["DCR_REDIS_URL"] = redis_url
    done = subprocess.run(
        [sys.executable, "-m", "dcr_middleware", "check", "--json"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    shown = _example_after("dcr-middleware check --json")
    assert sorted(shown) == sorted(printed)
    assert list(shown) == list(printed)  # in the same order too
