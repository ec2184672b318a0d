"""Test-suite setup: the shipped isolated AIRFLOW_HOME (``airflow_db`` creates its SQLite database once per run)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from airflow_provider_dify.testing.airflow_home import use_isolated_airflow_home

REPO_ROOT = Path(__file__).resolve().parents[1]

# The shipped isolated home (the plugin's ``airflow_db`` fixture creates its database), set before Airflow is
# imported, with the example DAGs as the DAGs folder; a test's spawned processes inherit it.
_HOME = Path(os.environ.get("DIFY_TEST_AIRFLOW_HOME") or tempfile.mkdtemp(prefix="dify-airflow-home-"))
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
use_isolated_airflow_home(_HOME, dags_folder=REPO_ROOT / "example_dags")
# The machine-wide rate windows of this run live apart from any other run's (and from a bench's).
os.environ["AIRFLOW_PROVIDER_DIFY_WINDOW_DIR"] = tempfile.mkdtemp(prefix="dify-rate-windows-")


@pytest.fixture(autouse=True)
def _fresh_rate_budgets() -> None:
    """Each test starts without rate-limit history: the budgets are per process, as the workspace's window is."""
    from airflow_provider_dify.hooks import budget

    budget._budgets.clear()
    budget._shared.clear()
    budget._machine.clear()
