"""
End to end: a backfill of several logical dates with ``max_active_runs`` > 1 on a real Airflow 3 (scheduler with
LocalExecutor): the runs of one document sync over one scope overlap, all succeed, and the knowledge base ends
with every record exactly once. Uses the harness of :mod:`tests.e2e.test_real_airflow`.
"""

from __future__ import annotations

import os
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_real_airflow import AirflowProcesses, _airflow_version, _free_port, _query, _wait_until

pytestmark = pytest.mark.e2e

DAG_ID = "e2e_dify_backfill_overlap"
DATES = ("2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04")
RECORDS = 40

DAG_FILE = '''
"""One export over one scope, a run a day; the backfill runs several days at once."""

from datetime import datetime

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_dify.assets import knowledge_base_asset
from airflow_provider_dify.operators.sync import DifySyncDocumentsOperator

# A consumer scheduled on the knowledge base: it also registers the asset when the file is parsed, so the
# export's first asset events (four runs finishing at once) do not race to create it in Airflow's database
# (docs/assets.md, "Overlapping first events").
with DAG("e2e_dify_backfill_consumer", schedule=[knowledge_base_asset({dataset_id!r}, host={host!r})],
         start_date=datetime(2026, 1, 1), catchup=False):
    task(task_id="consume")(lambda: None)()

with DAG({dag_id!r}, schedule="@daily", start_date=datetime(2026, 1, 1), catchup=False, max_active_runs=4):
    DifySyncDocumentsOperator(
        task_id="sync",
        dataset_id={dataset_id!r},
        records=[{{"id": number, "text": f"record {{number}}"}} for number in range({records})],
        key_field="id",
        text_template="{{{{ text }}}}",
        name_prefix="rec-",
        scope="e2e:backfill",
        delete_missing=True,
        indexing_technique="economy",
        retries=0,
    )
'''


def _env(home: Path, dags: Path, db_path: Path, api_port: int, emulator: Any) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "_AIRFLOW"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{db_path}",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
            "AIRFLOW__CORE__ALLOWED_DESERIALIZATION_CLASSES_REGEXP": r"airflow_provider_dify\..*",
            "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(api_port),
            "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{api_port}",
            "AIRFLOW__API_AUTH__JWT_SECRET": os.urandom(16).hex(),
            "AIRFLOW__API__SECRET_KEY": os.urandom(16).hex(),
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
            "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
            "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
            "AIRFLOW_CONN_DIFY_DEFAULT": emulator.connection_json,
        }
    )
    return env


@pytest.fixture
def emulator() -> Any:
    from airflow_provider_dify.testing import DifyEmulator

    # Slow answers keep each run's task busy long enough for the runs to overlap.
    with DifyEmulator(indexing_seconds=0.05, queue_pickup_seconds=0.0, latency_seconds=0.03) as dify:
        yield dify


@pytest.mark.skipif(_airflow_version() < (3,), reason="the end-to-end test runs a real Airflow 3")
def test_backfill_with_overlapping_runs_ends_exact(tmp_path: Path, emulator: Any) -> None:
    dataset_id = emulator.create_dataset("e2e-backfill")["id"]
    home = tmp_path / "airflow"
    dags = home / "dags"
    dags.mkdir(parents=True)
    (dags / f"{DAG_ID}.py").write_text(DAG_FILE.format(
        dataset_id=dataset_id, dag_id=DAG_ID, records=RECORDS, host=emulator.url
    ))
    db_path = home / "airflow.db"
    api_port = _free_port()
    processes = AirflowProcesses(home, _env(home, dags, db_path, api_port, emulator))
    try:
        processes.run("db", "migrate")
        processes.start("api-server", "api-server", "--host", "127.0.0.1", "--port", str(api_port), "--workers", "1")
        processes.start("dag-processor", "dag-processor")
        processes.start("scheduler", "scheduler", "--skip-serve-logs")

        def api_healthy() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{api_port}/api/v2/monitor/health", timeout=2) as answer:
                    return answer.status == 200
            except OSError:
                return False

        _wait_until(api_healthy, 120, "the api-server", processes)
        _wait_until(lambda: _query(db_path, "SELECT 1 FROM dag WHERE dag_id = ?", DAG_ID), 120, "the DAG", processes)
        processes.run(
            "backfill",
            "create",
            "--dag-id",
            DAG_ID,
            "--from-date",
            DATES[0],
            "--to-date",
            DATES[-1],
            "--max-active-runs",
            "4",
        )

        def runs_finished() -> list[str] | None:
            rows = _query(db_path, "SELECT run_type, state FROM dag_run WHERE dag_id = ?", DAG_ID)
            backfill = [str(state) for run_type, state in rows if run_type == "backfill"]
            finished = all(str(state) in ("success", "failed") for _, state in rows)
            return [str(state) for _, state in rows] if len(backfill) == len(DATES) and finished else None

        # The unpaused DAG also gets its latest scheduled run: one more run of the same export, at the same time.
        states = _wait_until(runs_finished, 300, "the backfill runs to finish", processes)
        assert set(states) == {"success"}, f"{states}\n{processes.logs()}"
        intervals = _query(
            db_path, "SELECT start_date, end_date FROM task_instance WHERE dag_id = ? AND task_id = 'sync'", DAG_ID
        )
        assert len(intervals) == len(states) >= len(DATES)
        overlapping = sum(
            1
            for index, (start, end) in enumerate(intervals)
            for other_start, other_end in intervals[index + 1 :]
            if start < other_end and other_start < end
        )
        assert overlapping >= 1, f"no two sync tasks ran at the same time: {intervals}"
    finally:
        processes.stop()
    stored = emulator.documents(dataset_id)
    names = sorted(doc["name"] for doc in stored)
    assert names == sorted(f"rec-{number}" for number in range(RECORDS))  # every record exactly once
    assert all(doc["text"] == f"record {doc['name'][4:]}" for doc in stored)
    # Every run read the same truth: one create per record (later runs' creates are Dify's same-name upserts
    # onto the same document), and nothing was deleted.
    assert emulator.count("DELETE") == 0
    assert len({doc["id"] for doc in stored}) == RECORDS
