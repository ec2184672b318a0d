"""The Python code blocks of README.md and docs/, found and sorted, so that the suite runs every one.

A block is a fenced ```` ```python ```` block, also inside an admonition (indented). Each has a kind:

``dag``
    defines a DAG (``with DAG(...)``, ``DAG(...)`` or an ``@dag`` function): tests/sync/test_docs_code_blocks.py
    imports it as a DAG file and runs each DAG with ``dag.test()`` against the emulator.
``test``
    defines ``test_...`` functions: it is written to a file and run by pytest in a process of its own.
``project``
    a file of a page's project, its first line naming the file (``# dags/product_catalog.py``): the page's
    files are run together, as a user's project (tests/emulator/test_testing_docs.py runs docs/emulator.md's).
``embedded``
    only ``--8<-- "path"`` lines (pymdownx.snippets): the page shows a file of the repository, which its own
    tests run (the example DAGs); the site build fails when the file is missing.
``snippet``
    anything else (a call, a fragment of a DAG): it must be valid Python.
``invalid``
    not valid Python: the suite fails on it.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FENCE = re.compile(
    r"^(?P<indent>[ \t]*)```(?P<language>[\w+-]*)[^\n]*\n(?P<body>.*?)^(?P=indent)```[ \t]*$", re.MULTILINE | re.DOTALL
)
SNIPPET_LINE = re.compile(r'^\s*--8<--\s+"[^"]+"\s*$')
#: The first line of a block that is one file of a page's project: ``# dags/product_catalog.py``.
PROJECT_FILE_LINE = re.compile(r"^# ([\w./-]+\.py)$")


@dataclass(frozen=True)
class CodeBlock:
    """
    One fenced code block of a page.

    :param page: the page, relative to the repository.
    :param line: the line of the opening fence (1-based).
    :param language: the fence's language.
    :param source: the code, without the indentation of an enclosing admonition.
    """

    page: str
    line: int
    language: str
    source: str

    @property
    def name(self) -> str:
        """``page:line``, the block's test id."""
        return f"{self.page}:{self.line}"

    @property
    def kind(self) -> str:
        """``dag``, ``test``, ``project``, ``embedded``, ``snippet`` or ``invalid`` (see the module's docstring)."""
        lines = [line for line in self.source.splitlines() if line.strip()]
        if lines and all(SNIPPET_LINE.match(line) for line in lines):
            return "embedded"
        try:
            tree = ast.parse(self.source)
        except SyntaxError:
            return "invalid"
        if lines and PROJECT_FILE_LINE.match(lines[0]):
            return "project"
        if any(isinstance(node, ast.FunctionDef) and node.name.startswith("test_") for node in tree.body):
            return "test"
        if any(_makes_a_dag(node) for node in ast.walk(tree)):
            return "dag"
        return "snippet"


def _name_of(node: ast.expr) -> str | None:
    if isinstance(node, ast.Call):
        node = node.func
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _makes_a_dag(node: ast.AST) -> bool:
    if isinstance(node, ast.Call):
        return _name_of(node) == "DAG"
    if isinstance(node, ast.FunctionDef):
        return any(_name_of(decorator) == "dag" for decorator in node.decorator_list)
    return False


def pages() -> list[Path]:
    """README.md and every page of docs/."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("**/*.md"))]


def code_blocks(language: str = "python") -> list[CodeBlock]:
    """Every fenced block of ``language`` in :func:`pages`, in page order."""
    blocks: list[CodeBlock] = []
    for page in pages():
        text = page.read_text()
        for match in FENCE.finditer(text):
            if match["language"] != language:
                continue
            indent = match["indent"]
            source = "".join(
                line[len(indent) :] if line.startswith(indent) else line
                for line in match["body"].splitlines(keepends=True)
            )
            line = text.count("\n", 0, match.start()) + 1
            blocks.append(CodeBlock(str(page.relative_to(REPO)), line, language, source))
    return blocks


def blocks_of_kind(kind: str) -> list[CodeBlock]:
    """The blocks of one kind, each source once (README.md and the home page show the same first DAG)."""
    seen: set[str] = set()
    found: list[CodeBlock] = []
    for block in code_blocks():
        if block.kind == kind and block.source not in seen:
            seen.add(block.source)
            found.append(block)
    return found
