"""The pre-commit configuration mirrors the static part of the quick tier, offline."""

from __future__ import annotations

from pathlib import Path

import yaml

ROOT = Path(__file__).parent.parent.parent


def test_precommit_runs_the_quick_tiers_static_checks_from_the_venv() -> None:
    config = yaml.safe_load((ROOT / ".pre-commit-config.yaml").read_text())
    # Only local hooks: nothing is cloned from the network, the locked .venv tools run.
    assert [repo["repo"] for repo in config["repos"]] == ["local"]
    hooks = config["repos"][0]["hooks"]
    assert {hook["language"] for hook in hooks} == {"system"}
    entries = [hook["entry"].replace(" --force-exclude", "") for hook in hooks]
    script = (ROOT / "scripts" / "test.sh").read_text()
    static = [
        line.strip().replace('"$bin/', "").replace('"', "")
        for line in script.splitlines()
        if line.strip().startswith(('"$bin/ruff"', '"$bin/mypy"'))
    ]
    assert static == ["ruff check .", "ruff format --check .", "mypy --strict dcr_middleware"]
    assert entries == [f".venv/bin/{command.removesuffix(' .')}" for command in static]
