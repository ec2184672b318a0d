"""docs/emulator.md's "Testing your DAGs" project, run verbatim: its DAG file and test file, extracted from the
page into a fresh directory, pass under ``pytest`` there, with no conftest and no Airflow settings of ours."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PAGE = ROOT / "docs" / "emulator.md"
#: A Python block of the page whose first line names the file it is: ``# dags/product_catalog.py``.
FILE_BLOCK = re.compile(r"```python\n# ([\w./-]+\.py)\n(.*?)```", re.DOTALL)


def project_files(page_text: str) -> dict[str, str]:
    """The files a page's ``# path.py`` blocks define, by relative path (the path line kept, as a user copies it)."""
    return {path: f"# {path}\n{body}" for path, body in FILE_BLOCK.findall(page_text)}


def write_project(directory: Path, files: dict[str, str]) -> None:
    """Write the files under ``directory``."""
    for relative, text in files.items():
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)


def user_environment() -> dict[str, str]:
    """This process's environment without the suite's Airflow and provider settings: a user's shell."""
    return {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("AIRFLOW", "DIFY_", "PYTEST_")) and name != "PYTHONPATH"
    }


def run_pytest(python: str, project: Path, timeout: float = 540) -> subprocess.CompletedProcess[str]:
    """``python -m pytest`` in ``project``, as a user would run it there."""
    return subprocess.run(
        [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--durations=1"],
        cwd=project,
        env=user_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_the_page_defines_a_dag_file_and_a_test_file() -> None:
    files = project_files(PAGE.read_text())
    assert set(files) == {"dags/product_catalog.py", "tests/test_product_catalog.py"}
    assert "run_dag(DAG_FILE" in files["tests/test_product_catalog.py"]


def test_the_documented_project_passes(tmp_path: Path) -> None:
    write_project(tmp_path, project_files(PAGE.read_text()))
    completed = run_pytest(sys.executable, tmp_path)
    output = completed.stdout + completed.stderr
    assert completed.returncode == 0, output[-6000:]
    assert "1 passed" in output
    assert not (tmp_path / "conftest.py").exists() and not (tmp_path / "tests" / "conftest.py").exists()


def test_a_broken_snippet_fails(tmp_path: Path) -> None:
    """The page's test file importing a name the package lacks makes the run fail (the check can fail)."""
    old = "from airflow_provider_dify.testing import run_dag"
    new = "from airflow_provider_dify.testing import run_dag_missing as run_dag"
    files = project_files(PAGE.read_text())
    test_file = "tests/test_product_catalog.py"
    assert old in files[test_file]
    files[test_file] = files[test_file].replace(old, new)
    write_project(tmp_path, files)
    completed = run_pytest(sys.executable, tmp_path)
    assert completed.returncode != 0
