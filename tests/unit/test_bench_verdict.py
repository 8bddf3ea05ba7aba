"""Benchmark verdicts (benchmarks/run.py): a ratio backed by refusals or failed requests is
INVALID, never a PASS or a MISS.

``benchmarks/`` is a folder of scripts, not a package: ``run.py`` is loaded from its path, with
its folder on ``sys.path`` for the sibling ``harness.py`` it imports (as when it is run).
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def run() -> Iterator[ModuleType]:
    spec = importlib.util.spec_from_file_location("benchmarks_run", BENCHMARKS / "run.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while being made
    sys.path.insert(0, str(BENCHMARKS))
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCHMARKS))
        del sys.modules[spec.name]


def figures(rps: float = 1000.0, *, requests: int = 3000, non_2xx: int = 0, errors: int = 0) -> Any:
    """One case's summarized figures, as ``run_rounds`` writes them."""
    return {
        "rps": rps,
        "server_cpu_us_per_req": 100.0,
        "requests": requests,
        "non_2xx": non_2xx,
        "errors": errors,
        "rounds": [{"rps": rps}],
    }


def clean_run(run: ModuleType) -> dict[str, Any]:
    """Every case answered as it expects: all 2xx, or all refused for a 429 case."""
    return {case.name: figures(non_2xx=0 if case.expect < 300 else 3000) for case in run.CASES}


def line_of(lines: list[dict[str, Any]], case: str) -> dict[str, Any]:
    return next(line for line in lines if line["case"] == case and line.get("baseline"))


@pytest.mark.parametrize(
    ("row", "expect", "problem"),
    [
        pytest.param(figures(), 201, None, id="all-expected"),
        pytest.param(figures(non_2xx=7), 201, "7 of 3000 answers not 201", id="refusals"),
        pytest.param(figures(errors=2), 200, "2 failed requests", id="errors"),
        pytest.param(
            figures(non_2xx=1, errors=1),
            200,
            "1 of 3000 answers not 200, 1 failed requests",
            id="both",
        ),
        pytest.param(figures(non_2xx=3000), 429, None, id="refusal-case-all-refused"),
        pytest.param(
            figures(non_2xx=2990), 429, "10 of 3000 answers not 429", id="refusal-case-2xx"
        ),
        pytest.param({}, 201, None, id="not-run"),
    ],
)
def test_bench_unexpected_answers(
    run: ModuleType, row: dict[str, Any], expect: int, problem: str | None
) -> None:
    assert run.unexpected_answers(row, expect) == problem


def test_bench_ratios_clean_run_gets_pass_or_miss(run: ModuleType) -> None:
    cases = clean_run(run)
    cases["pt-dcr-asgi-uv"] = figures(900.0)  # 0.9 of bare: under the 0.97 target
    lines = run.ratios(cases, {})
    assert line_of(lines, "pt-dcr-asgi-gu")["verdict"] == "PASS"
    missed = line_of(lines, "pt-dcr-asgi-uv")
    assert (missed["verdict"], missed["ratio"]) == ("MISS", 0.9)
    assert "invalid" not in missed
    assert line_of(lines, "pt-bare-asgi-uv-aa")["verdict"] == "info"


@pytest.mark.parametrize(
    ("case", "broken", "figures_of_broken", "reason"),
    [
        # Refusals answer faster: the ratio rises above target on throughput that is not there.
        pytest.param(
            "pt-dcr-asgi-uv",
            "pt-dcr-asgi-uv",
            figures(1500.0, non_2xx=900),
            "pt-dcr-asgi-uv: 900 of 3000 answers not 200",
            id="case-refused",
        ),
        pytest.param(
            "reg-asgi-uv-conf",
            "anchor-mcp-redis",
            figures(500.0, errors=12),
            "anchor-mcp-redis: 12 failed requests",
            id="baseline-errors",
        ),
        pytest.param(
            "pt-bare-asgi-uv-aa",
            "pt-bare-asgi-uv-aa",
            figures(non_2xx=1),
            "pt-bare-asgi-uv-aa: 1 of 3000 answers not 200",
            id="noise-floor",
        ),
    ],
)
def test_bench_ratios_unexpected_answers_make_the_verdict_invalid(
    run: ModuleType, case: str, broken: str, figures_of_broken: Any, reason: str
) -> None:
    cases = clean_run(run)
    cases[broken] = figures_of_broken
    line = line_of(run.ratios(cases, {}), case)
    assert line["verdict"] == "INVALID"
    assert line["invalid"] == reason
    assert line["ratio"] is not None  # still shown, but backs no verdict
