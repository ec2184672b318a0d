"""Fixtures of the sync tests: a SQLite warehouse behind an Airflow connection, DAG helpers."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
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
        {"max_retries": 8, "retry_wait_max": 0.05, "rate_limit_wait": 0.6, "timeout": 10, "connect_timeout": 5}
    )
    monkeypatch.setenv("AIRFLOW_CONN_DIFY_DEFAULT", json.dumps(connection))
    yield dify_emulator


def task_state(dag_run: Any, task_id: str) -> str:
    """A task's final state as a lower-case string (``success``, ``failed``...)."""
    return str(dag_run.get_task_instance(task_id).state).rsplit(".", 1)[-1].lower()


def try_number(dag_run: Any, task_id: str) -> int:
    """The attempts the task made."""
    return int(dag_run.get_task_instance(task_id).try_number)


def xcom_value(dag_run: Any, task_id: str, key: str = "return_value") -> Any:
    """An XCom value of the run, read from the metadata DB (Airflow 2.11 and 3.x)."""
    from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS

    if AIRFLOW_V_3_0_PLUS:
        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            row = session.scalars(
                XComModel.get_many(run_id=dag_run.run_id, dag_ids=dag_run.dag_id, task_ids=task_id, key=key)
            ).first()
            return XComModel.deserialize_value(row) if row is not None else None
    from airflow.models.xcom import XCom

    return XCom.get_one(run_id=dag_run.run_id, dag_id=dag_run.dag_id, task_id=task_id, key=key)
