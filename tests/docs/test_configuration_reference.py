"""The configuration reference (docs/configuration.md) has one row per ``Settings`` field, each
with the right ``DCR_`` variable and default; the README's first screen has the two commands."""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path
from typing import Any

import pytest

# WebOb 1.8 imports the deprecated stdlib ``cgi`` module; with warnings as errors that would fail
# the import of dcr_middleware (which imports the WSGI adapter) during collection.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "'cgi' is deprecated", DeprecationWarning)
    import dcr_middleware
    from dcr_middleware.core import _env
    from dcr_middleware.core.settings import env_name

ROOT = Path(__file__).resolve().parents[2]
CONFIGURATION = ROOT / "docs" / "configuration.md"
README = ROOT / "README.md"

FIELDS = {f.name: f for f in dataclasses.fields(dcr_middleware.Settings)}
VARIABLES = {env_name(name): name for name in FIELDS}
_CODE_SPAN = re.compile(r"`([^`]*)`")


def _cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _reference_rows() -> dict[str, dict[str, str]]:
    """Rows of the reference table, keyed by variable, as ``{column: cell}``."""
    lines = CONFIGURATION.read_text("utf-8").splitlines()
    header_index = next(
        i for i, line in enumerate(lines) if _cells(line)[:3] == ["variable", "type", "default"]
    )
    header = _cells(lines[header_index])
    rows: dict[str, dict[str, str]] = {}
    for line in lines[header_index + 2 :]:
        if not line.startswith("|"):
            break
        cells = _cells(line)
        assert len(cells) == len(header), f"row has {len(cells)} cells, not {len(header)}: {line}"
        variable = cells[0].strip("`")
        assert variable not in rows, f"{variable} has two rows"
        rows[variable] = dict(zip(header, cells, strict=True))
    return rows


ROWS = _reference_rows()


def _field_default(name: str) -> Any:
    field = FIELDS[name]
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:
        return field.default_factory()
    pytest.fail(f"Settings.{name} has no default")


def _documented(cell: str, default: Any) -> Any:
    """The documented default, converted to the type of the code's default."""
    if default is None:
        return None if cell.split()[0].lower() == "unset" else cell
    if default == ():
        return () if cell.split()[0].lower() == "empty" else cell
    match = _CODE_SPAN.search(cell)
    assert match is not None, f"no `value` in the default cell {cell!r}"
    text = match.group(1)
    if isinstance(default, bool):
        return _env.parse_bool(text)
    if isinstance(default, int):
        return _env.parse_int(text)
    if isinstance(default, float):
        return _env.parse_float(text)
    if isinstance(default, tuple):
        return _env.parse_list(text)
    return text


def test_configuration_reference_has_the_table_columns() -> None:
    columns = list(next(iter(ROWS.values())))
    assert columns == ["variable", "type", "default", "meaning", "security note"]


def test_configuration_reference_has_a_row_for_every_settings_field() -> None:
    missing = sorted(set(VARIABLES) - set(ROWS))
    assert not missing, f"docs/configuration.md has no row for {missing}"


def test_configuration_reference_rows_name_only_settings_fields() -> None:
    unknown = sorted(set(ROWS) - set(VARIABLES))
    assert not unknown, f"docs/configuration.md documents variables Settings lacks: {unknown}"


@pytest.mark.parametrize("variable", sorted(VARIABLES))
def test_configuration_reference_default_matches_the_code(variable: str) -> None:
    if variable not in ROWS:
        pytest.fail(f"docs/configuration.md has no row for {variable}")
    default = _field_default(VARIABLES[variable])
    if not (default is None or isinstance(default, str | int | float | bool | tuple)):
        pytest.skip(f"default of type {type(default).__name__} is not compared")
    assert _documented(ROWS[variable]["default"], default) == default


@pytest.mark.parametrize("variable", sorted(VARIABLES))
def test_configuration_reference_row_is_filled_in(variable: str) -> None:
    if variable not in ROWS:
        pytest.fail(f"docs/configuration.md has no row for {variable}")
    empty = [column for column, cell in ROWS[variable].items() if not cell]
    assert not empty, f"{variable}: empty {empty}"


def test_readme_first_screen_has_exactly_the_two_commands() -> None:
    first_screen = README.read_text("utf-8").splitlines()[:30]
    commands = [
        line.split("#", 1)[0].strip()
        for line in first_screen
        if re.match(r"\s*(\$\s*)?bash\s+scripts/", line)
    ]
    assert commands == ["bash scripts/demo.sh", "bash scripts/test.sh"]


def test_readme_commands_name_existing_scripts() -> None:
    for script in ("demo.sh", "test.sh"):
        assert (ROOT / "scripts" / script).is_file(), f"scripts/{script} is missing"
