"""The built wheel: license file and SPDX expression, ``py.typed``, project URLs, entry points; no build warning.

The wheel is built offline from a copy of the sources (``pip wheel --no-deps --no-build-isolation --no-index``
with the environment's setuptools), so that the test needs no network and leaves no ``build/`` in the tree.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import zipfile
from email.parser import Parser
from pathlib import Path

import pytest

import airflow_provider_dify

ROOT = Path(__file__).resolve().parents[2]
#: What setuptools reads to build the wheel.
SOURCES = ("pyproject.toml", "README.md", "LICENSE", "airflow_provider_dify")
#: A warning class name (``SetuptoolsDeprecationWarning``, ``BuildBackendWarning``...) or the word "deprecated".
WARNING_PATTERN = re.compile(r"\w+Warning\b|deprecat", re.IGNORECASE)


def build_wheel(source: Path, out: Path) -> Path:
    """Build the wheel of the sources in ``source`` offline into ``out``; return its path."""
    wheel, _ = _build(source, out)
    return wheel


def _build(source: Path, out: Path) -> tuple[Path, str]:
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-v",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--wheel-dir",
            str(out),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-4000:]
    (wheel,) = out.glob("airflow_provider_dify-*.whl")
    return wheel, output


@pytest.fixture(scope="module")
def built_wheel(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The wheel built from a copy of the sources, and everything the build printed."""
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, source / name)
    return _build(source, tmp_path_factory.mktemp("wheel"))


def _metadata(wheel: Path) -> tuple[list[str], dict[str, list[str]], str]:
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        dist_info = f"airflow_provider_dify-{airflow_provider_dify.__version__}.dist-info"
        message = Parser().parsestr(archive.read(f"{dist_info}/METADATA").decode())
        entry_points = archive.read(f"{dist_info}/entry_points.txt").decode()
    headers: dict[str, list[str]] = {}
    for key, value in message.items():
        headers.setdefault(key, []).append(value)
    return names, headers, entry_points


def test_build_prints_no_warning(built_wheel: tuple[Path, str]) -> None:
    _, output = built_wheel
    # pip's own note about byte-compiling being off is not a warning about the project.
    lines = [line for line in output.splitlines() if "byte-compiling is disabled" not in line]
    warnings = [line.strip() for line in lines if WARNING_PATTERN.search(line)]
    assert warnings == []


def test_wheel_has_license_file_and_spdx_expression(built_wheel: tuple[Path, str]) -> None:
    wheel, _ = built_wheel
    names, headers, _ = _metadata(wheel)
    license_files = [name for name in names if name.endswith(".dist-info/licenses/LICENSE")]
    assert len(license_files) == 1
    with zipfile.ZipFile(wheel) as archive:
        assert "Apache License" in archive.read(license_files[0]).decode()
    assert headers["License-Expression"] == ["Apache-2.0"]
    assert headers["License-File"] == ["LICENSE"]
    assert "License" not in headers  # the free-text field the expression replaces
    assert not [c for c in headers.get("Classifier", []) if c.startswith("License ::")]


def test_wheel_is_typed_and_has_project_urls(built_wheel: tuple[Path, str]) -> None:
    wheel, _ = built_wheel
    names, headers, _ = _metadata(wheel)
    assert "airflow_provider_dify/py.typed" in names
    labels = {value.split(",", 1)[0] for value in headers.get("Project-URL", [])}
    assert {"Homepage", "Documentation", "Changelog", "Issues"} <= labels


def test_wheel_ships_the_package_and_its_entry_points(built_wheel: tuple[Path, str]) -> None:
    wheel, _ = built_wheel
    names, _, entry_points = _metadata(wheel)
    assert "airflow_provider_dify/testing/pytest_plugin.py" in names
    assert not [name for name in names if name.startswith(("tests/", "bench/", "example_dags/"))]
    assert "provider_info = airflow_provider_dify:get_provider_info" in entry_points
    assert "dify_emulator = airflow_provider_dify.testing.pytest_plugin" in entry_points
