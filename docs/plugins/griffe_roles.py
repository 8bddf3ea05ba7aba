"""A Griffe extension for the docs site: turns the reST roles of our docstrings into Markdown.

The code's docstrings use Sphinx cross-reference roles (``:class:`~dcr_middleware.ClientStore```,
``:func:`query_client```). mkdocstrings renders Markdown, where a role would show as literal
``:class:`` text. This extension rewrites each role, before rendering, into an *optional*
autorefs cross-reference: a link when the target is rendered somewhere on the site (the API page),
plain code otherwise (private helpers), and never a strict-mode warning. Loaded from
``mkdocs.yml`` (``plugins.mkdocstrings.handlers.python.options.extensions``).
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|obj|exc):`(?P<tilde>~)?(?P<target>[\w.]+)`")


def _resolve(obj: griffe.Object, target: str) -> str:
    """The full dotted path of ``target`` as seen from ``obj``'s scope (``target`` if unknown)."""
    if target.startswith("."):  # relative to the module's package, as in ``:mod:`.oidc```
        module = obj.module
        package = module if module.is_package else module.parent
        name = target.lstrip(".")
        for _ in range(len(target) - len(name) - 1):  # ``..x``: one package up per extra dot
            package = package.parent if package.parent is not None else package
        return f"{package.path}.{name}" if name else package.path
    head, _, rest = target.partition(".")
    try:
        base = obj.resolve(head)
    except (griffe.NameResolutionError, ValueError):
        return target
    return f"{base}.{rest}" if rest else base


def _rewrite(obj: griffe.Object, text: str) -> str:
    def replace(match: re.Match[str]) -> str:
        target = match["target"]
        shown = target.rsplit(".", 1)[-1] if match["tilde"] else target.lstrip(".")
        identifier = html.escape(_resolve(obj, target), quote=True)
        code = f"<code>{html.escape(shown)}</code>"
        return f'<autoref identifier="{identifier}" optional>{code}</autoref>'

    return _ROLE.sub(replace, text)


class SphinxRoles(griffe.Extension):
    """Rewrite ``:class:`...``` style roles in every docstring of the loaded package."""

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        """Rewrite the docstrings once the whole package is loaded (so names resolve)."""
        self._walk(pkg, set())

    def _walk(self, obj: griffe.Object, seen: set[str]) -> None:
        if obj.path in seen:
            return
        seen.add(obj.path)
        if obj.docstring is not None:
            obj.docstring.value = _rewrite(obj, obj.docstring.value)
        for member in obj.members.values():
            if not member.is_alias:
                self._walk(member, seen)  # type: ignore[arg-type]
