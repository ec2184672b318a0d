"""
End to end: a real Airflow 3 runs the warehouse export example DAG; its writes emit the knowledge base's asset
event, which triggers the asset-scheduled example DAG (a retrieval smoke check); an export that changes nothing
emits no event and triggers nothing.

Uses the harness of :mod:`tests.e2e.test_real_airflow` (api-server, scheduler, dag-processor, triggerer on
127.0.0.1, a fresh AIRFLOW_HOME, everything stopped at the end).
"""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_real_airflow import AirflowProcesses, _airflow_version, _free_port, _query, _wait_until

pytestmark = pytest.mark.e2e

EXPORT = "example_dify_warehouse_export"
CHECK = "example_dify_knowledge_base_changed"
KNOWLEDGE_BASE = "e2e-warehouse"
EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"
#: Seconds the scheduler gets to (wrongly) start a consumer run after the unchanged export finished.
QUIET_SECONDS = 10.0


def _environment(home: Path, dags: Path, db_path: Path, api_port: int, extra: dict[str, str]) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("AIRFLOW", "_AIRFLOW"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{db_path}",
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
            "AIRFLOW__CORE__PARALLELISM": "2",
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
            **extra,
        }
    )
    return env


@pytest.mark.skipif(_airflow_version() < (3,), reason="the end-to-end test runs a real Airflow 3")
def test_export_triggers_the_asset_scheduled_check_only_when_it_changed_the_knowledge_base(tmp_path: Path) -> None:
    from airflow_provider_dify.assets import knowledge_base_uri
    from airflow_provider_dify.testing import DifyEmulator
    from example_dags.warehouse import build_warehouse, sqlite_connection_json

    home = tmp_path / "airflow"
    dags = home / "dags"
    dags.mkdir(parents=True)
    for name in (EXPORT, CHECK):
        shutil.copy(EXAMPLES / f"{name}.py", dags / f"{name}.py")
    warehouse = build_warehouse(tmp_path / "warehouse.db")
    db_path = home / "airflow.db"
    api_port = _free_port()

    # Indexing starts 8 s after a document is written: a trigger that fires within a few seconds of the
    # deferral races the LocalExecutor's report of the deferring workload (Airflow 3.3 then retries the task).
    with DifyEmulator(indexing_seconds=0.002, queue_pickup_seconds=8) as emulator:
        env = _environment(
            home,
            dags,
            db_path,
            api_port,
            {
                "AIRFLOW_CONN_DIFY_DEFAULT": emulator.connection_json,
                "AIRFLOW_CONN_WAREHOUSE_SQLITE": sqlite_connection_json(warehouse),
                "DIFY_EXAMPLE_KNOWLEDGE_BASE": KNOWLEDGE_BASE,
                "DIFY_EXAMPLE_SMOKE_QUERY": "grinder",
            },
        )
        processes = AirflowProcesses(home, env)
        try:
            processes.run("db", "migrate")
            processes.start(
                "api-server", "api-server", "--host", "127.0.0.1", "--port", str(api_port), "--workers", "1"
            )
            processes.start("dag-processor", "dag-processor")
            processes.start("scheduler", "scheduler", "--skip-serve-logs")
            processes.start("triggerer", "triggerer", "--skip-serve-logs")

            def api_healthy() -> bool:
                try:
                    url = f"http://127.0.0.1:{api_port}/api/v2/monitor/health"
                    with urllib.request.urlopen(url, timeout=2) as answer:
                        return answer.status == 200
                except OSError:
                    return False

            def runs(dag_id: str) -> list[tuple[str, str]]:
                return [
                    (str(run_id), str(state))
                    for run_id, state in _query(
                        db_path, "SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY id", dag_id
                    )
                ]

            def all_finished(dag_id: str, count: int) -> bool:
                found = runs(dag_id)
                return len(found) >= count and all(state in ("success", "failed") for _, state in found)

            _wait_until(api_healthy, 120, "the api-server", processes)
            for dag_id in (EXPORT, CHECK):
                _wait_until(
                    lambda dag_id=dag_id: _query(db_path, "SELECT 1 FROM dag WHERE dag_id = ?", dag_id),
                    120,
                    f"the DAG {dag_id}",
                    processes,
                )
            # The export is unpaused at creation with a daily schedule: the scheduler starts its first run.
            _wait_until(lambda: all_finished(EXPORT, 1), 300, "the first export run", processes)
            assert [state for _, state in runs(EXPORT)] == ["success"], processes.logs()

            dataset_id = emulator.find_dataset(KNOWLEDGE_BASE)["id"]
            uri = knowledge_base_uri(emulator.url, dataset_id)

            def events() -> list[tuple[str, dict[str, Any]]]:
                rows = _query(
                    db_path,
                    "SELECT e.source_task_id, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id"
                    " WHERE a.uri = ? ORDER BY e.id",
                    uri,
                )
                return [(str(task), json.loads(extra) if isinstance(extra, str) else extra) for task, extra in rows]

            first_events = events()
            by_task = {task: extra for task, extra in first_events}
            assert set(by_task) == {"knowledge_base", "sync_products", "sync_faq"}, first_events
            assert by_task["sync_products"]["created"] == 240 and by_task["sync_faq"]["created"] == 40

            # The events trigger the smoke check (once or more: the scheduler may batch them into one run).
            _wait_until(lambda: all_finished(CHECK, 1), 180, "the asset-triggered check", processes)
            time.sleep(3)  # let events queued meanwhile become runs
            _wait_until(lambda: all_finished(CHECK, 1), 180, "the asset-triggered checks", processes)
            checks = runs(CHECK)
            assert all(run_id.startswith("asset_triggered__") for run_id, _ in checks), checks
            assert all(state == "success" for _, state in checks), processes.logs()
            hits = _query(
                db_path,
                "SELECT COUNT(*) FROM task_instance WHERE dag_id = ? AND task_id = 'check_hits' AND state = 'success'",
                CHECK,
            )
            assert hits[0][0] >= 1, "no triggered run got as far as the retrieval check"

            # An export that changes nothing: no asset event, so no new check run.
            processes.run("dags", "trigger", EXPORT)
            _wait_until(lambda: all_finished(EXPORT, 2), 300, "the second export run", processes)
            assert [state for _, state in runs(EXPORT)] == ["success", "success"], processes.logs()
            time.sleep(QUIET_SECONDS)
            assert events() == first_events
            assert runs(CHECK) == checks
        finally:
            processes.stop()
