"""A test that starts a Redis or a server says so with its marker, or is refused: the quick tier
(``-m "not redis and not server and not slow"``) then starts none."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from support import processes

TESTS_DIR = Path(__file__).parent.parent


def test_spawn_refuses_a_process_the_test_is_not_marked_for() -> None:
    with pytest.raises(processes.MarkerError, match=r"not marked @pytest.mark.redis"):
        process = processes.spawn([sys.executable, "-c", "pass"], marker="redis")
        processes.stop(process)  # only reached when the guard is broken


def test_spawn_refuses_an_unknown_marker() -> None:
    with pytest.raises(ValueError, match="unknown cost marker"):
        processes.require_marker("expensive")


def test_collection_refuses_an_unmarked_test_using_a_redis_fixture(tmp_path: Path) -> None:
    (tmp_path / "test_unmarked.py").write_text(
        "def test_unmarked(redis_url):\n    pass\n\n\n"
        "import pytest\n\n\n@pytest.mark.server\ndef test_marked(serve):\n    pass\n"
    )
    (tmp_path / "pytest.ini").write_text("[pytest]\nmarkers =\n    redis\n    server\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(TESTS_DIR)
    argv = [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"]
    argv += ["-c", "pytest.ini", "-p", "support.reaper", "-p", "support.fixtures"]
    done = subprocess.run(
        argv,
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode != 0, done.stdout
    assert "test_unmarked uses redis_server without @pytest.mark.redis" in done.stderr
    assert "test_marked" not in done.stderr
