"""Count the lines of dcr_middleware written twice, once blocking and once asyncio (issue 12).

The pairs are found by name among the module-level definitions of the package (``ast``):

- classes ``X`` / ``AsyncX`` and ``SyncX`` / ``AsyncX`` (``ClientStore`` / ``AsyncClientStore``,
  ``SyncBackend`` / ``AsyncBackend``);
- functions ``f`` / ``af``, ``f`` / ``async_f`` and ``sync_f`` / ``async_f`` (``drivers.run`` /
  ``drivers.arun``, ``storage.connect.sync_client`` / ``async_client``).

A twin in the async one's own module is preferred; otherwise a twin of that name in exactly one
other module is taken. For each pair, ``async`` and ``await`` are deleted from both sources
(decorators included), every line is stripped of its indentation, blank lines are dropped, and
the *mirrored lines* are the lines of the async one that also occur in the sync one, counted as
a multiset (a line that occurs three times in the async one and twice in the sync one counts
twice). Docstrings and comments count like code: they are kept in step by hand too.

    python scripts/mirrored_lines.py             the table of pairs and the total
    python scripts/mirrored_lines.py --max 100   exits 1 when the total is above 100

``tests/unit/test_mirrored_lines.py`` runs it on the package, so scripts/test.sh needs no step
of its own.
"""

from __future__ import annotations

import argparse
import ast
import re
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "dcr_middleware"
_ASYNC = re.compile(r"\b(?:async|await)\b[ \t]*")


@dataclass(frozen=True)
class Definition:
    """A module-level class or function: where it is and its source lines."""

    module: str  # dotted, relative to the package ("storage.redis")
    name: str
    kind: str  # "class" or "function"
    lines: tuple[str, ...]

    @property
    def label(self) -> str:
        return f"{self.module}.{self.name}" if self.module else self.name


@dataclass(frozen=True)
class Pair:
    """A sync definition, its async twin and the lines they share."""

    sync: Definition
    asynchronous: Definition
    mirrored: int

    @property
    def label(self) -> str:
        if self.sync.module == self.asynchronous.module:
            return f"{self.sync.label} / {self.asynchronous.name}"
        return f"{self.sync.label} / {self.asynchronous.label}"


def normalized(lines: Iterable[str]) -> Counter[str]:
    """The non-blank lines without ``async``/``await`` and indentation, with their counts."""
    stripped = (_ASYNC.sub("", line).strip() for line in lines)
    return Counter(line for line in stripped if line)


def mirrored(sync_lines: Iterable[str], async_lines: Iterable[str]) -> int:
    """How many lines of the async source also occur in the sync one (multiset intersection)."""
    return sum((normalized(async_lines) & normalized(sync_lines)).values())


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def definitions(root: Path) -> list[Definition]:
    """Every module-level class and function under ``root``, in file and source order."""
    found = []
    for path in sorted(root.rglob("*.py")):
        text = path.read_text("utf-8")
        lines = text.splitlines()
        module = _module_name(root, path)
        for node in ast.parse(text, str(path)).body:
            if isinstance(node, ast.ClassDef):
                kind = "class"
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                kind = "function"
            else:
                continue
            first = min([node.lineno, *(d.lineno for d in node.decorator_list)])
            end = node.end_lineno or node.lineno
            found.append(Definition(module, node.name, kind, tuple(lines[first - 1 : end])))
    return found


def sync_names(name: str, kind: str) -> list[str]:
    """The names the sync twin of the async definition ``name`` may have."""
    bare = name.lstrip("_")
    underscores = name[: len(name) - len(bare)]
    if kind == "class":
        if bare.startswith("Async") and bare[5:6].isupper():
            return [underscores + bare[5:], underscores + "Sync" + bare[5:]]
        return []
    if bare.startswith("async_") and len(bare) > 6:
        return [underscores + bare[6:], underscores + "sync_" + bare[6:]]
    if bare.startswith("a") and len(bare) > 1:
        return [underscores + bare[1:]]
    return []


def pairs(root: Path = PACKAGE) -> list[Pair]:
    """The sync/async pairs under ``root`` with their mirrored lines, most mirrored first."""
    found = definitions(root)
    by_name: dict[tuple[str, str], list[Definition]] = {}
    for definition in found:
        by_name.setdefault((definition.kind, definition.name), []).append(definition)
    result = []
    for asynchronous in found:
        for name in sync_names(asynchronous.name, asynchronous.kind):
            candidates = by_name.get((asynchronous.kind, name), [])
            local = [c for c in candidates if c.module == asynchronous.module]
            twins = local or candidates
            if len(twins) == 1:
                sync = twins[0]
                result.append(Pair(sync, asynchronous, mirrored(sync.lines, asynchronous.lines)))
                break
    return sorted(result, key=lambda pair: (-pair.mirrored, pair.label))


def class_total(found: Sequence[Pair]) -> int:
    """The mirrored lines of the class pairs only: how issue 12 counted (its 412 lines)."""
    return sum(pair.mirrored for pair in found if pair.sync.kind == "class")


def table(found: Sequence[Pair]) -> str:
    """The pairs and their counts, then the total, as printed by the script."""
    width = max([len("pair"), *(len(pair.label) for pair in found)])
    rows = [f"{'pair':<{width}}  lines", f"{'-' * width}  -----"]
    rows += [f"{pair.label:<{width}}  {pair.mirrored:>5}" for pair in found]
    rows.append(f"{'class pairs (the issue 12 count)':<{width}}  {class_total(found):>5}")
    rows.append(f"{'total':<{width}}  {sum(pair.mirrored for pair in found):>5}")
    return "\n".join(rows)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max", type=int, help="exit 1 when the total is above this")
    parser.add_argument("--package", type=Path, default=PACKAGE, help="default: dcr_middleware/")
    args = parser.parse_args(argv)
    found = pairs(args.package)
    print(table(found))
    total = sum(pair.mirrored for pair in found)
    if args.max is not None and total > args.max:
        print(f"{total} mirrored lines, more than --max {args.max}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
