"""The docstrings the API reference is generated from stay true to the code.

The site build (``make docs``, MkDocs in strict mode) fails on a broken link or cross-reference; it cannot
check the ``:param x:`` fields of operators, which take their base classes' arguments through ``**kwargs``.
This test does: every documented argument of a public class is one that the class or a base class takes.
"""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import airflow_provider_dify

PARAM = re.compile(r"^\s*:param\s+(?:[\w\[\], |.]+\s+)?(\w+):", re.MULTILINE)


def _public_classes() -> list[type]:
    classes: dict[str, type] = {}
    for info in pkgutil.walk_packages(airflow_provider_dify.__path__, prefix="airflow_provider_dify."):
        if any(part.startswith("_") for part in info.name.split(".")) or info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for name, value in vars(module).items():
            if inspect.isclass(value) and value.__module__ == module.__name__ and not name.startswith("_"):
                classes[f"{module.__name__}.{name}"] = value
    return [classes[name] for name in sorted(classes)]


def _accepted(cls: type) -> set[str]:
    names: set[str] = set()
    for klass in cls.__mro__:
        init = vars(klass).get("__init__")
        if init is None:
            continue
        try:
            names |= set(inspect.signature(init).parameters)
        except (TypeError, ValueError):
            continue
    # Dataclasses and frozen settings document their fields.
    names |= set(getattr(cls, "__dataclass_fields__", {}))
    return names


CLASSES = _public_classes()


def test_the_walk_finds_the_public_classes() -> None:
    names = {cls.__name__ for cls in CLASSES}
    assert {"DifyHook", "DifySyncDocumentsOperator", "DifyIndexingTrigger", "DifyEmulator"} <= names


@pytest.mark.parametrize("cls", CLASSES, ids=lambda cls: f"{cls.__module__}.{cls.__name__}")
def test_documented_arguments_are_taken(cls: type) -> None:
    documented = PARAM.findall(inspect.getdoc(cls) or "")
    unknown = sorted(set(documented) - _accepted(cls))
    assert unknown == [], f"{cls.__name__} documents arguments it does not take: {unknown}"


#: Callables of other libraries that the pages name.
EXTERNAL_CALLABLES = {"raise_for_status", "literal", "expand"}  # requests' and Airflow's


def _project_names() -> set[str]:
    names: set[str] = set()
    for info in pkgutil.walk_packages(airflow_provider_dify.__path__, prefix="airflow_provider_dify."):
        if info.name.endswith("__main__"):
            continue
        for name, value in vars(importlib.import_module(info.name)).items():
            names.add(name)
            if inspect.isclass(value):
                names |= set(dir(value))
    return names


def test_the_pages_name_only_what_exists() -> None:
    """Every ``DifyName``, ``hook.method(`` and ``name()`` the README and docs/ mention is in the package."""
    root = Path(__file__).resolve().parents[2]
    known = _project_names() | EXTERNAL_CALLABLES
    missing: list[str] = []
    for page in [root / "README.md", *sorted((root / "docs").glob("**/*.md"))]:
        text = page.read_text()
        mentioned = set(re.findall(r"`(Dify\w+)`", text))
        mentioned |= set(re.findall(r"\bhook\.(\w+)\(", text))
        mentioned |= set(re.findall(r"`(\w+)\(\)`", text))
        missing += [f"{page.relative_to(root)}: {name}" for name in sorted(mentioned - known)]
    assert missing == []


def _build_site(root_of_copy: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(root_of_copy / "site")],
        cwd=root_of_copy,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture
def docs_copy(tmp_path: Path) -> Path:
    """The site's sources (mkdocs.yml, docs/, the package, the files pages embed), copied for a test to break."""
    pytest.importorskip("mkdocstrings_handlers.python", reason="the docs extra is installed in the Airflow 3 venv")
    root = Path(__file__).resolve().parents[2]
    for name in ("mkdocs.yml", "CHANGELOG.md"):  # the changelog page embeds CHANGELOG.md
        shutil.copy2(root / name, tmp_path / name)
    for name in ("docs", "airflow_provider_dify", "example_dags"):  # the guides embed the example DAGs
        shutil.copytree(root / name, tmp_path / name, ignore=shutil.ignore_patterns("__pycache__"))
    return tmp_path


def test_the_site_builds_in_strict_mode(docs_copy: Path) -> None:
    completed = _build_site(docs_copy)
    assert completed.returncode == 0, completed.stderr[-4000:]
    reference = (docs_copy / "site" / "reference" / "hooks" / "index.html").read_text()
    assert "create_document_by_text" in reference  # generated from the docstrings


def test_a_broken_anchor_fails_the_build(docs_copy: Path) -> None:
    index = docs_copy / "docs" / "index.md"
    index.write_text(index.read_text() + "\nSee [the hook](hook.md#no-such-section).\n")
    completed = _build_site(docs_copy)
    assert completed.returncode != 0
    assert "no-such-section" in completed.stderr
