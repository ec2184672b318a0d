"""A griffe extension for the API reference: the project's Sphinx-style docstrings, as Markdown.

The docstrings follow Airflow's style (``:param x:`` fields, roles such as ``:class:`~pkg.mod.Name```, and
``#:`` comments that document a module constant). mkdocstrings parses the fields; this extension

- turns each inline role into Markdown: a fully qualified reference to a public object becomes a
  cross-reference (which the strict build checks: an unknown target fails it); anything else (a short or
  relative name, a private module) becomes code;
- gives an attribute without a docstring the ``#:`` comment lines just above it as its docstring.
"""

from __future__ import annotations

import ast
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|attr|mod|exc|data|obj):`(?P<tilde>~?)(?P<target>[^`]+)`")
PACKAGE = "airflow_provider_dify."


def _markdown(match: re.Match[str]) -> str:
    target = match["target"]
    shown = target.rsplit(".", 1)[-1] if match["tilde"] else target
    private = any(part.startswith("_") for part in target.split("."))
    if target.startswith(PACKAGE) and not private:
        return f"[`{shown}`][{target}]"
    return f"`{shown.lstrip('.')}`"


class SphinxRoles(griffe.Extension):
    """Rewrite inline Sphinx roles as Markdown; read ``#:`` comments as attribute docstrings."""

    def on_attribute_instance(
        self, *, node: ast.AST | griffe.ObjectNode, attr: griffe.Attribute, **kwargs: Any
    ) -> None:
        if attr.docstring is not None or not attr.lineno or attr.filepath is None:
            return
        try:
            lines = attr.lines_collection[attr.filepath]
        except KeyError:
            return
        comment: list[str] = []
        index = attr.lineno - 2
        while index >= 0 and lines[index].lstrip().startswith("#:"):
            comment.insert(0, lines[index].lstrip()[2:].strip())
            index -= 1
        if comment:
            attr.docstring = griffe.Docstring(ROLE.sub(_markdown, " ".join(comment)), lineno=index + 2, parent=attr)

    def on_instance(self, *, obj: griffe.Object, **kwargs: Any) -> None:
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(_markdown, obj.docstring.value)
