"""Every Python and shell snippet in README.md and docs/*.md is run or checked, so none drifts.

How a fenced block is treated depends on its language and on an HTML comment on the line just
before its opening fence (mkdocs renders nothing for the comment):

```python`` (also ``py``)
    Executed, each block in a fresh namespace (``__name__ == "__snippet__"``, so code under
    ``if __name__ == "__main__":`` is defined but not run), in a scratch directory, with no
    ``DCR_*`` variable set. ruff's undefined-name check (F821) runs over it too, so a name used
    inside a function must exist as well.
``<!-- continued -->`` before a Python block
    Executed in the namespace the page's previous Python block left (a page that builds an
    example step by step).
``console`` (commands after ``$ ``, output lines after them), ``bash``, ``sh``, ``shell``
    Each command is checked without running it: ``dcr-middleware`` (and
    ``python -m dcr_middleware``) arguments must parse; every ``DCR_*`` variable set must be a
    setting; ``pip install`` may name the checkout's extras (``'.[metrics]'``) but not
    ``dcr-middleware`` itself (it is on no index); ``uvicorn``/``gunicorn`` targets in
    ``dcr_middleware`` must exist; ``bash scripts/...`` must exist; any other program must be one
    of :data:`KNOWN_PROGRAMS`.
``<!-- run -->`` before a ``console`` block
    Each ``$ `` command is executed by bash in a scratch directory (no ``DCR_*`` inherited, the
    venv's ``bin`` first on ``PATH``, 30 s at most), and what it prints (stdout then stderr) must
    be the lines that follow it in the block. A line ``...`` stands for any number of lines. Use
    it for commands that need no server and print the same thing every time. (Marked ``slow``:
    ``scripts/test.sh --quick`` leaves it out, the full suite runs it.)
``<!-- illustrative -->`` (or ``<!-- illustrative: why -->``) before any block
    Not executed and not checked (a Python block must still compile). Use it for a fragment
    that needs your app, a running server or Redis, or a package the test environment lacks.

Other languages (``json``, ``http``, ``text``, ``toml``...) are not checked. A failure message
names the page and line of the block.
"""

from __future__ import annotations

import ast
import dataclasses
import json
import os
import re
import shlex
import subprocess
import sys
import tomllib
import warnings
from dataclasses import dataclass
from importlib.util import find_spec
from pathlib import Path

import pytest

with warnings.catch_warnings():  # WebOb 1.8 imports the deprecated stdlib ``cgi``
    warnings.filterwarnings("ignore", "'cgi' is deprecated", DeprecationWarning)
    import dcr_middleware
    from dcr_middleware import Settings
    from dcr_middleware.cli import build_parser
    from dcr_middleware.core.settings import env_name

from .deliberate import NOT_SETTINGS

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
PYTHON = {"python", "py", "python3"}
SHELL = {"console", "bash", "sh", "shell"}
MARKER = re.compile(r"^\s*<!--\s*(illustrative|run|continued)\b[^>]*-->\s*$")
_FENCE = re.compile(r"^(?P<indent> *)(?P<fence>`{3,}|~{3,})(?P<info>[^`]*)$")
SETTINGS = {env_name(f.name) for f in dataclasses.fields(Settings)}
EXTRAS = set(
    tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]["optional-dependencies"]
)
# Programs the docs may name that this package does not provide (checked by name only).
KNOWN_PROGRAMS = {
    "apt-get", "awk", "bash", "cat", "cd", "curl", "docker", "echo", "env", "export", "git",
    "grep", "gunicorn", "head", "jq", "kill", "mkdocs", "openssl", "pip", "printf", "pytest",
    "python", "python3", "redis-cli", "redis-server", "sed", "sh", "sha256sum", "sort", "sudo",
    "tail", "tr", "uv", "uvicorn", "wc", "wrk", "xargs",
}  # fmt: skip
HELP = (
    "\n\nIf this block cannot run here (it needs your app, a server, Redis or a package the "
    "tests lack), put '<!-- illustrative -->' on the line just before its opening fence; see "
    "the docstring of tests/docs/test_snippets.py for the other markers."
)


@dataclass(frozen=True)
class Block:
    page: Path
    line: int  # of the opening fence, 1-based
    language: str
    marker: str | None  # illustrative, run, continued
    text: str

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of ``page``, with the marker on the line before each."""
    lines = page.read_text("utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = _FENCE.match(lines[i])
        if opening is None:
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        end = i + 1
        while end < len(lines) and not lines[end].strip().startswith(fence):
            end += 1
        body = "\n".join(line[len(indent) :] for line in lines[i + 1 : end])
        info = opening["info"].strip().split()
        marker = MARKER.match(lines[i - 1]) if i > 0 else None
        found.append(Block(page, i + 1, info[0] if info else "", marker and marker[1], body + "\n"))
        i = end + 1
    return found


ALL = [block for page in PAGES for block in blocks(page)]
PYTHON_BLOCKS = [b for b in ALL if b.language in PYTHON]
SHELL_BLOCKS = [b for b in ALL if b.language in SHELL and b.marker != "illustrative"]
RUN_BLOCKS = [b for b in SHELL_BLOCKS if b.marker == "run"]


def test_snippets_are_found_on_every_page_with_code() -> None:
    assert len(PYTHON_BLOCKS) > 20 and len(SHELL_BLOCKS) > 20
    markers = [b for b in ALL if b.marker]
    assert all(b.marker != "run" or b.language == "console" for b in markers), [
        b.id for b in markers if b.marker == "run" and b.language != "console"
    ]
    continued = [b for b in ALL if b.marker == "continued"]
    assert all(b.language in PYTHON for b in continued), [b.id for b in continued]


def test_snippets_markers_sit_right_before_a_fence() -> None:
    stray = []
    for page in PAGES:
        lines = page.read_text("utf-8").splitlines()
        for number, line in enumerate(lines, 1):
            if MARKER.match(line) and not (number < len(lines) and _FENCE.match(lines[number])):
                stray.append(f"{page.relative_to(ROOT)}:{number}")
    assert stray == [], "a marker must be on the line just before the opening fence"


# --- Python ------------------------------------------------------------------------------------


@pytest.mark.parametrize("block", PYTHON_BLOCKS, ids=lambda b: b.id)
def test_snippets_python_blocks_compile(block: Block) -> None:
    compile(block.text, block.id, "exec", flags=ast.PyCF_ONLY_AST)


def _chains() -> list[tuple[Block, str]]:
    """Each executed block with the source it runs after (the page's earlier blocks, when it
    is ``continued``)."""
    chains: list[tuple[Block, str]] = []
    previous: dict[Path, str] = {}
    for block in PYTHON_BLOCKS:
        if block.marker == "illustrative":
            continue
        before = previous.get(block.page, "") if block.marker == "continued" else ""
        chains.append((block, before))
        previous[block.page] = before + block.text
    return chains


EXECUTED = _chains()

_RUNNER = """
import json, os, sys, traceback, warnings
warnings.simplefilter("ignore", DeprecationWarning)
results = {}
namespaces = {}
for item in json.load(sys.stdin):
    space = dict(namespaces.get(item["after"], {})) if item["after"] else {}
    space["__name__"] = "__snippet__"
    try:
        exec(compile(item["text"], item["id"], "exec"), space)
    except BaseException:
        results[item["id"]] = traceback.format_exc(limit=-3)
    else:
        results[item["id"]] = None
    namespaces[item["id"]] = space
print(json.dumps(results))
"""


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str | None]:
    """Run every executed block once, in one interpreter (each in its own namespace)."""
    work = tmp_path_factory.mktemp("snippets")
    items, last = [], {}
    for block, before in EXECUTED:
        after = last.get(block.page) if before else None
        items.append({"id": block.id, "text": block.text, "after": after})
        last[block.page] = block.id
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCR_")}
    result = subprocess.run(
        [sys.executable, "-c", _RUNNER],
        input=json.dumps(items),
        capture_output=True,
        text=True,
        cwd=work,
        env=env,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    outcome: dict[str, str | None] = json.loads(result.stdout.strip().splitlines()[-1])
    return outcome


@pytest.mark.parametrize(("block", "before"), EXECUTED, ids=lambda v: getattr(v, "id", ""))
def test_snippets_python_blocks_run(
    block: Block, before: str, executed: dict[str, str | None]
) -> None:
    error = executed[block.id]
    assert error is None, f"{block.id} failed:\n{error}{HELP}"


def test_snippets_python_blocks_use_no_undefined_name(tmp_path: Path) -> None:
    files = {}
    for index, (block, before) in enumerate(EXECUTED):
        path = tmp_path / f"snippet_{index}.py"
        path.write_text(before + block.text, "utf-8")
        files[path.name] = block.id
    ruff = Path(sys.executable).with_name("ruff")
    result = subprocess.run(
        [str(ruff), "check", "--isolated", "--select", "F821,F822", "--output-format", "json",
         "--no-cache", str(tmp_path)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    problems = [
        f"{files[Path(p['filename']).name]}: {p['message']}" for p in json.loads(result.stdout)
    ]
    assert problems == [], "\n".join(problems) + HELP


@pytest.mark.parametrize(
    "block", [b for b in PYTHON_BLOCKS if b.marker == "illustrative"], ids=lambda b: b.id
)
def test_snippets_illustrative_python_imports_from_dcr_middleware_exist(block: Block) -> None:
    import importlib

    for node in ast.walk(ast.parse(block.text)):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("dcr_middleware"):
            module = importlib.import_module(node.module or "")
            lazy = "__getattr__" in vars(module)  # e.g. dcr_middleware.asgi:app, built on use
            for alias in node.names:
                assert (
                    alias.name in vars(module)
                    or lazy
                    or find_spec(f"{node.module}.{alias.name}") is not None
                ), f"{block.id}: {node.module} has no {alias.name}"


# --- shell -------------------------------------------------------------------------------------


def commands(block: Block) -> list[str]:
    """The command lines of a shell block: ``$ ``-lines of a console block (output skipped),
    every non-comment line of a script block; ``\\`` continuations joined."""
    lines = block.text.splitlines()
    if block.language == "console":
        joined = []
        index = 0
        while index < len(lines):
            if lines[index].startswith("$ "):
                command = lines[index][2:]
                while command.endswith("\\") and index + 1 < len(lines):
                    index += 1
                    command = command[:-1] + " " + lines[index].strip()
                joined.append(command)
            index += 1
        return joined
    result: list[str] = []
    pending = ""
    for line in lines:
        pending += line.rstrip()
        if pending.endswith("\\"):
            pending = pending[:-1] + " "
            continue
        if pending.strip() and not pending.lstrip().startswith("#"):
            result.append(pending.strip())
        pending = ""
    return result


_PLACEHOLDER = re.compile(r"<[^<>\n]*>")


def simple_commands(line: str) -> list[list[str]]:
    """``line`` split into simple commands (at ``&&``, ``||``, ``|``, ``;``), as words."""
    lexer = shlex.shlex(_PLACEHOLDER.sub("PLACEHOLDER", line), posix=True, punctuation_chars="|&;")
    lexer.whitespace_split = True
    parts: list[list[str]] = [[]]
    for word in lexer:
        if word and set(word) <= set("|&;"):
            parts.append([])
        else:
            parts[-1].append(word)
    return [p for p in parts if p]


_ASSIGNMENT = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=")


def check_command(words: list[str]) -> list[str]:
    """What is wrong with one simple command (an empty list when nothing is)."""
    problems: list[str] = []
    if any("$(" in word or "`" in word for word in words):
        return problems  # a command substitution: not checked
    while words and _ASSIGNMENT.match(words[0]):
        problems += _check_variable(words.pop(0))
    if not words:
        return problems
    program, args = words[0], words[1:]
    if program == "export":
        for word in args:
            problems += _check_variable(word)
    elif program == "dcr-middleware":
        problems += _check_cli(args)
    elif program.endswith(("python", "python3")) and args[:2] == ["-m", "dcr_middleware"]:
        problems += _check_cli(args[2:])
    elif program == "pip" and args[:1] == ["install"]:
        problems += _check_pip(args[1:])
    elif program in ("uvicorn", "gunicorn"):
        for arg in args:
            module = arg.partition(":")[0]
            if module.startswith("dcr_middleware") and find_spec(module) is None:
                problems.append(f"no module {module}")
    elif program == "bash" and args and args[0].startswith("scripts/"):
        if not (ROOT / args[0]).exists():
            problems.append(f"no {args[0]} in the repository")
    elif program not in KNOWN_PROGRAMS and not (ROOT / program).exists():
        problems.append(f"unknown program {program!r} (add it to KNOWN_PROGRAMS if it is real)")
    return problems


def _check_variable(assignment: str) -> list[str]:
    name = assignment.partition("=")[0]
    if name.startswith("DCR_") and name not in SETTINGS | NOT_SETTINGS:
        return [f"{name} is not a setting"]
    return []


def _check_cli(args: list[str]) -> list[str]:
    parser = build_parser()
    parser.exit_on_error = False
    try:
        with open(os.devnull, "w") as devnull:  # argparse prints usage errors and --help
            stdout, stderr = sys.stdout, sys.stderr
            sys.stdout = sys.stderr = devnull
            try:
                parser.parse_args(args)
            finally:
                sys.stdout, sys.stderr = stdout, stderr
    except SystemExit as exc:
        if exc.code not in (0, None):
            return [f"dcr-middleware {shlex.join(args)}: does not parse (exit {exc.code})"]
    except Exception as exc:
        return [f"dcr-middleware {shlex.join(args)}: does not parse ({exc})"]
    return []


def _check_pip(args: list[str]) -> list[str]:
    problems = []
    for arg in (a for a in args if not a.startswith("-")):
        name, _, extras = arg.partition("[")
        if name.endswith(".whl"):  # the wheel python -m build writes for this version
            wheel = f"dcr_middleware-{dcr_middleware.__version__}-py3-none-any.whl"
            if Path(name).name != wheel:
                problems.append(f"{name}: python -m build writes {wheel}")
        if name in (".", "./") or name.endswith(".whl"):
            unknown = {e.strip() for e in extras.rstrip("]").split(",") if e.strip()} - EXTRAS
            if unknown:
                problems.append(f"no extra {sorted(unknown)} in pyproject.toml")
        elif name.replace("_", "-").lower() == "dcr-middleware":
            problems.append(
                f"pip install {arg!r}: dcr-middleware is on no package index; "
                "write pip install '.[extra]' (from a checkout) or name the requirement"
            )
    return problems


@pytest.mark.parametrize("block", SHELL_BLOCKS, ids=lambda b: b.id)
def test_snippets_shell_commands_exist_and_parse(block: Block) -> None:
    problems = []
    for line in commands(block):
        for words in simple_commands(line):
            problems += [f"{line!r}: {p}" for p in check_command(words)]
    assert problems == [], f"{block.id}:\n" + "\n".join(problems) + HELP


def test_snippets_command_checker_catches_drift() -> None:
    # The checks above must be able to fail.
    assert check_command(["dcr-middleware", "serve", "--no-such-flag"])
    assert check_command(["dcr-middleware", "no-such-command"])
    assert check_command(["DCR_RATE_LIMTT=1/minute", "dcr-middleware", "serve"])
    assert check_command(["pip", "install", "dcr-middleware[metrics]"])
    assert check_command(["pip", "install", ".[no-such-extra]"])
    assert check_command(["dcr-midleware", "serve"])
    assert check_command(["uvicorn", "dcr_middleware.nosuch:app"])
    assert not check_command(["pip", "install", ".[metrics,otel]"])
    assert check_command(["pip", "install", "dist/dcr_middleware-0.0.1-py3-none-any.whl"])
    assert check_command(["pip", "install", "dcr_middleware-0.1.0-py3-none-any.whl[nope]"])
    assert not check_command(["DCR_OTEL=true", "dcr-middleware", "serve", "--port", "1"])
    assert simple_commands("A=1 curl x | jq . && dcr-middleware check") == [
        ["A=1", "curl", "x"],
        ["jq", "."],
        ["dcr-middleware", "check"],
    ]


def _expected(block: Block) -> list[tuple[str, list[str]]]:
    pairs: list[tuple[str, list[str]]] = []
    for line in block.text.splitlines():
        if line.startswith("$ "):
            pairs.append((line[2:], []))
        elif pairs:
            pairs[-1][1].append(line)
    return pairs


def _matches(expected: list[str], actual: list[str]) -> bool:
    if not expected:
        return not actual
    if expected[0] == "...":
        return any(_matches(expected[1:], actual[i:]) for i in range(len(actual) + 1))
    return bool(actual) and expected[0] == actual[0] and _matches(expected[1:], actual[1:])


@pytest.mark.slow  # one process per command: seconds each on a loaded machine
@pytest.mark.parametrize("block", RUN_BLOCKS, ids=lambda b: b.id)
def test_snippets_console_blocks_print_what_they_show(block: Block, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DCR_")}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env["PYTHONWARNINGS"] = "ignore::DeprecationWarning"
    for command, expected in _expected(block):
        result = subprocess.run(
            ["bash", "-c", command],
            capture_output=True,
            text=True,
            cwd=tmp_path,
            env=env,
            timeout=30,
            check=False,
        )
        actual = (result.stdout + result.stderr).splitlines()
        shows, printed = "\n".join(expected), "\n".join(actual)
        assert _matches(expected, actual), (
            f"{block.id}: $ {command}\nthe page shows:\n{shows}\nthe command printed:\n{printed}"
        )


def test_snippets_output_matching_takes_ellipsis_for_any_lines() -> None:
    assert _matches(["a", "...", "d"], ["a", "b", "c", "d"])
    assert _matches(["a", "..."], ["a"])
    assert not _matches(["a", "d"], ["a", "b", "d"])
    assert not _matches(["a"], ["a", "b"])
    assert _expected(Block(ROOT, 1, "console", "run", "$ one\nout\n$ two\n")) == [
        ("one", ["out"]),
        ("two", []),
    ]
