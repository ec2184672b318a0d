"""The testing kit as a user gets it: the built wheel, installed with the documented extra only into a fresh
virtual environment, runs docs/emulator.md's project (its DAG file and test file, copied from the page) under
``pytest``, with no conftest and none of the suite's Airflow settings.

The wheel is built offline from a copy of the sources and installed offline with the pinned ``uv`` and the
committed constraints of the Airflow line this suite runs on (3.3 or 2.11), so the test needs no network.
A wheel without a module the page uses must make the project fail: the check can fail.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

from tests.emulator.test_testing_docs import PAGE, project_files, run_pytest, user_environment, write_project
from tests.unit.test_packaging import ROOT, SOURCES, build_wheel


def _uv() -> str:
    uv = ROOT / ".venv-tools" / "bin" / "uv"  # the Makefile's pinned uv
    found = str(uv) if uv.exists() else shutil.which("uv")
    if found is None:
        pytest.skip("uv is not installed: `make .venv/.installed` installs the pinned one")
    return found


def _constraints() -> Path:
    line = "2.11" if version("apache-airflow").startswith("2.") else "3.3"
    return ROOT / "constraints" / f"airflow-{line}-py{sys.version_info.major}.{sys.version_info.minor}.txt"


def install_wheel(wheel: Path, venv: Path) -> str:
    """A fresh virtual environment with ``wheel[emulator]`` installed; return its Python."""
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = str(venv / "bin" / "python")
    completed = subprocess.run(
        [
            _uv(),
            "pip",
            "install",
            "-q",
            "--offline",
            "--python",
            python,
            "-c",
            str(_constraints()),
            f"{wheel}[emulator]",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr[-4000:]
    return python


def _sources(tmp: Path, *, leave_out: str | None = None) -> Path:
    source = tmp / "source"
    source.mkdir()
    for name in SOURCES:
        path = ROOT / name
        if path.is_dir():
            shutil.copytree(path, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(path, source / name)
    if leave_out is not None:
        (source / leave_out).unlink()
    return source


def _project(tmp: Path) -> Path:
    project = tmp / "project"
    write_project(project, project_files(PAGE.read_text()))
    return project


def test_the_documented_project_passes_from_the_wheel(tmp_path: Path) -> None:
    wheel = build_wheel(_sources(tmp_path), tmp_path / "wheel")
    python = install_wheel(wheel, tmp_path / "venv")
    # Installed from the wheel, not from this checkout: the fresh environment imports its own copy.
    where = subprocess.run(
        [python, "-c", "import airflow_provider_dify.testing.dag_runner as m, pytest; print(m.__file__)"],
        cwd=tmp_path,
        env=user_environment(),
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert str(tmp_path / "venv") in where
    completed = run_pytest(python, _project(tmp_path))
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-6000:]
    assert "1 passed" in output


def test_a_wheel_without_the_runner_fails_the_project(tmp_path: Path) -> None:
    wheel = build_wheel(_sources(tmp_path, leave_out="airflow_provider_dify/testing/dag_runner.py"), tmp_path / "wheel")
    python = install_wheel(wheel, tmp_path / "venv")
    completed = run_pytest(python, _project(tmp_path))
    assert completed.returncode != 0
    assert "dag_runner" in completed.stdout + completed.stderr
