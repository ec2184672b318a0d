"""Fixtures of the sync tests: a SQLite warehouse behind an Airflow connection, DAG helpers."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

# Import a hook first: importing airflow_provider_dify.exceptions first in a fresh process runs into the
# provider's import cycle (see tests/indexing/conftest.py).
import airflow_provider_dify.hooks.dify  # noqa: F401

WAREHOUSE_CONN_ID = "warehouse_sqlite"


@pytest.fixture
def warehouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh copy of the example warehouse, reachable through the connection ``warehouse_sqlite``."""
    from example_dags.warehouse import build_warehouse, sqlite_connection_json

    path = build_warehouse(tmp_path / "warehouse.db")
    monkeypatch.setenv(f"AIRFLOW_CONN_{WAREHOUSE_CONN_ID.upper()}", sqlite_connection_json(path))
    return path


def execute_sql(path: Path, sql: str, *parameters: Any) -> None:
    """Change the warehouse between runs."""
    with sqlite3.connect(path) as connection:
        connection.execute(sql, parameters)
    connection.close()


@pytest.fixture
def dify_fast_retries(dify_emulator: Any, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """The emulator, with a connection whose retries wait a fraction of a second (faults tests)."""
    connection = dict(json.loads(dify_emulator.connection_json))
    connection["extra"] = json.dumps(
        {
            "max_retries": 8,
            "retry_wait_max": 0.05,
            "rate_limit_wait": 0.6,
            "rate_limit_window": 0.5,  # the emulator's window in the faults tests
            "timeout": 10,
            "connect_timeout": 5,
        }
    )
    monkeypatch.setenv("AIRFLOW_CONN_DIFY_DEFAULT", json.dumps(connection))
    yield dify_emulator


@pytest.fixture
def quiet_named_events(
    capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> Callable[[str, list[str]], None]:
    """
    A check that the knowledge base named ``name`` got its events on its named asset, from ``tasks`` in that
    order, and that nothing the test ran logged a line with "warning" (its output and log records so far).
    """

    def check(name: str, tasks: list[str]) -> None:
        from airflow_provider_dify.assets import knowledge_base_named
        from tests.sync.test_asset_events import asset_events

        captured = capfd.readouterr()
        logged = captured.out + captured.err + caplog.text
        assert [task for task, _ in asset_events(knowledge_base_named(name).uri)] == tasks
        assert [line for line in logged.splitlines() if "warning" in line.lower()] == []

    return check
