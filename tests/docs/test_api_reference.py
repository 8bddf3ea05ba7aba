"""The Python API page (docs/api.md, rendered by mkdocstrings) documents every public name."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

import griffe
import pytest

# WebOb 1.8 imports the deprecated stdlib ``cgi`` module; with warnings as errors that would fail
# the import of dcr_middleware (which imports the WSGI adapter) during collection.
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", "'cgi' is deprecated", DeprecationWarning)
    import dcr_middleware

ROOT = Path(__file__).resolve().parents[2]
API_PAGE = ROOT / "docs" / "api.md"
_DIRECTIVE = re.compile(r"^::: ([\w.]+)\s*$", re.M)
DOCUMENTED = _DIRECTIVE.findall(API_PAGE.read_text("utf-8"))
PUBLIC = sorted(name for name in dcr_middleware.__all__ if not name.startswith("_"))


@pytest.mark.parametrize("name", PUBLIC)
def test_api_page_documents_every_public_name(name: str) -> None:
    assert f"dcr_middleware.{name}" in DOCUMENTED, f"docs/api.md has no '::: dcr_middleware.{name}'"


def test_api_page_documents_the_authlib_integration() -> None:
    assert "dcr_middleware.integrations.authlib" in DOCUMENTED


def test_api_page_directives_name_public_objects() -> None:
    private = [path for path in DOCUMENTED if any(part.startswith("_") for part in path.split("."))]
    assert private == []
    top_level = [p.split(".", 1)[1] for p in DOCUMENTED if p.count(".") == 1]
    assert sorted(set(top_level) - set(PUBLIC)) == []


def test_api_page_is_in_the_nav() -> None:
    assert re.search(
        r"^\s*-\s*[^:]+:\s*api\.md\s*$", (ROOT / "mkdocs.yml").read_text("utf-8"), re.M
    )


def test_griffe_roles_extension_rewrites_every_sphinx_role() -> None:
    extensions = griffe.load_extensions(str(ROOT / "docs" / "plugins" / "griffe_roles.py"))
    package = griffe.load("dcr_middleware", search_paths=[str(ROOT)], extensions=extensions)
    texts: list[str] = []

    def collect(obj: object) -> None:
        docstring = getattr(obj, "docstring", None)
        if docstring is not None:
            texts.append(docstring.value)
        for member in getattr(obj, "members", {}).values():
            if not member.is_alias:
                collect(member)

    collect(package)
    leftovers = [t for t in texts if re.search(r":(class|func|meth|mod|data|attr):`", t)]
    assert leftovers == []
    # Resolved to full paths, so the references link where the target is rendered (docs/api.md).
    assert any('<autoref identifier="dcr_middleware.core.errors.' in text for text in texts)


def _rendered_objects(package: griffe.Module) -> tuple[set[str], list[griffe.Object]]:
    """The paths the API page renders (each ``:::`` target and its public members) and the
    objects whose docstrings it shows."""
    paths: set[str] = set()
    shown: list[griffe.Object] = []

    def walk(obj: griffe.Object | griffe.Alias) -> None:
        paths.add(obj.path)
        target = obj.final_target if isinstance(obj, griffe.Alias) else obj
        paths.add(target.path)
        shown.append(target)  # type: ignore[arg-type]
        for name, member in target.members.items():
            if not member.is_alias and (name == "__init__" or not name.startswith("_")):
                walk(member)

    for directive in DOCUMENTED:
        walk(package[directive.partition(".")[2]])
    return paths, shown


def test_api_page_roles_to_modules_name_rendered_modules() -> None:
    # An unrendered target falls back to code text: fine for a class ("ClientCapError"), but a
    # module shown by its last name reads as a word ("each events event", issue 14).
    extensions = griffe.load_extensions(str(ROOT / "docs" / "plugins" / "griffe_roles.py"))
    package = griffe.load("dcr_middleware", search_paths=[str(ROOT)], extensions=extensions)
    paths, shown = _rendered_objects(package)
    unresolved: list[tuple[str, str]] = []
    for obj in shown:
        if obj.docstring is None:
            continue
        for identifier in re.findall(r'<autoref identifier="([^"]+)"', obj.docstring.value):
            if identifier in paths:
                continue
            try:
                target = package[identifier.partition(".")[2]]
            except KeyError:
                unresolved.append((obj.path, identifier))  # names nothing in the package
                continue
            if target.is_module:
                unresolved.append((obj.path, identifier))
    assert unresolved == []
