"""Test-suite setup: a private AIRFLOW_HOME with a real SQLite metadata database, created once per run."""

from __future__ import annotations

import os
import tempfile
from importlib.metadata import version
from pathlib import Path

import pytest

_HOME = Path(os.environ.get("DIFY_TEST_AIRFLOW_HOME") or tempfile.mkdtemp(prefix="dify-airflow-home-"))
os.environ["AIRFLOW_HOME"] = str(_HOME)
os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] = f"sqlite:///{_HOME / 'airflow.db'}"
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(Path(__file__).resolve().parents[1] / "example_dags")
os.environ.setdefault("AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES_REGEXP", r"airflow_provider_dify\..*")
# The machine-wide rate windows of this run live apart from any other run's (and from a bench's).
os.environ["AIRFLOW_PROVIDER_DIFY_WINDOW_DIR"] = tempfile.mkdtemp(prefix="dify-rate-windows-")
if version("apache-airflow").startswith("2."):
    # Airflow 2's unit-test config picks LocalExecutor, which refuses SQLite; dag.test() needs no executor.
    os.environ["AIRFLOW__CORE__EXECUTOR"] = "SequentialExecutor"

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """Create the Airflow metadata database (SQLite) once for the run; return AIRFLOW_HOME."""
    from airflow.utils import db

    if not (_HOME / ".db-ready").exists():
        db.resetdb()
        (_HOME / ".db-ready").touch()
    return _HOME


@pytest.fixture(autouse=True)
def _fresh_rate_budgets() -> None:
    """Each test starts without rate-limit history: the budgets are per process, as the workspace's window is."""
    from airflow_provider_dify.hooks import budget

    budget._budgets.clear()
    budget._shared.clear()
    budget._machine.clear()
