"""
End to end: a real Airflow 3 runs the warehouse export example DAG; its writes emit the knowledge base's asset
event, which triggers the asset-scheduled example DAG (a retrieval smoke check); an export that changes nothing
emits no event and triggers nothing.

Uses the harness of :mod:`tests.e2e.harness` (api-server, scheduler, dag-processor, triggerer on 127.0.0.1, a
fresh AIRFLOW_HOME, everything stopped at the end).
"""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.harness import AirflowDeployment, requires_airflow_3

pytestmark = pytest.mark.e2e

EXPORT = "example_dify_warehouse_export"
CHECK = "example_dify_knowledge_base_changed"
KNOWLEDGE_BASE = "e2e-warehouse"
EXAMPLES = Path(__file__).resolve().parents[2] / "example_dags"
#: Seconds the scheduler gets to (wrongly) start a consumer run after the unchanged export finished.
QUIET_SECONDS = 10.0


@requires_airflow_3
def test_export_triggers_the_asset_scheduled_check_only_when_it_changed_the_knowledge_base(tmp_path: Path) -> None:
    from airflow_provider_dify.assets import knowledge_base_named_uri, knowledge_base_uri
    from airflow_provider_dify.testing import DifyEmulator
    from example_dags.warehouse import build_warehouse, sqlite_connection_json

    warehouse = build_warehouse(tmp_path / "warehouse.db")

    # Indexing starts 8 s after a document is written: a trigger that fires within a few seconds of the
    # deferral races the LocalExecutor's report of the deferring workload (Airflow 3.3 then retries the task).
    with DifyEmulator(indexing_seconds=0.002, queue_pickup_seconds=8) as emulator:
        env = {
            "AIRFLOW_CONN_DIFY_DEFAULT": emulator.connection_json,
            "AIRFLOW_CONN_WAREHOUSE_SQLITE": sqlite_connection_json(warehouse),
            "DIFY_EXAMPLE_KNOWLEDGE_BASE": KNOWLEDGE_BASE,
        }
        with AirflowDeployment(tmp_path, env=env) as deployment:
            for name in (EXPORT, CHECK):
                shutil.copy(EXAMPLES / f"{name}.py", deployment.dags_folder / f"{name}.py")
            deployment.cli("db", "migrate")
            deployment.start("api-server", "dag-processor", "scheduler", "triggerer")

            def runs(dag_id: str) -> list[tuple[str, str]]:
                return [
                    (str(run_id), str(state))
                    for run_id, state in deployment.query(
                        "SELECT run_id, state FROM dag_run WHERE dag_id = ? ORDER BY id", dag_id
                    )
                ]

            def all_finished(dag_id: str, count: int) -> bool:
                found = runs(dag_id)
                return len(found) >= count and all(state in ("success", "failed") for _, state in found)

            deployment.wait_for_api_server()
            for dag_id in (EXPORT, CHECK):
                deployment.wait_for_dag(dag_id)
            # The export is unpaused at creation with a daily schedule: the scheduler starts its first run.
            deployment.wait_until(lambda: all_finished(EXPORT, 1), 300, "the first export run")
            assert [state for _, state in runs(EXPORT)] == ["success"], deployment.logs()

            dataset_id = emulator.find_dataset(KNOWLEDGE_BASE)["id"]
            uri = knowledge_base_named_uri("dify_default", KNOWLEDGE_BASE)  # the file names it: its named asset

            def events() -> list[tuple[str, dict[str, Any]]]:
                rows = deployment.query(
                    "SELECT e.source_task_id, e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id"
                    " WHERE a.uri = ? ORDER BY e.id",
                    uri,
                )
                return [(str(task), json.loads(extra) if isinstance(extra, str) else extra) for task, extra in rows]

            first_events = events()
            by_task = {task: extra for task, extra in first_events}
            assert set(by_task) == {"knowledge_base", "sync_products", "sync_faq"}, first_events
            assert by_task["sync_products"]["created"] == 240 and by_task["sync_faq"]["created"] == 40
            by_id = deployment.query(  # each change is one event, on the named asset: none through the alias
                "SELECT COUNT(*) FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.uri = ?",
                knowledge_base_uri(emulator.url, dataset_id),
            )
            assert by_id == [(0,)]

            # The events trigger the smoke check (once or more: the scheduler may batch them into one run).
            deployment.wait_until(lambda: all_finished(CHECK, 1), 180, "the asset-triggered check")
            time.sleep(3)  # let events queued meanwhile become runs
            deployment.wait_until(lambda: all_finished(CHECK, 1), 180, "the asset-triggered checks")
            checks = runs(CHECK)
            assert all(run_id.startswith("asset_triggered__") for run_id, _ in checks), checks
            assert all(state == "success" for _, state in checks), deployment.logs()
            hits = deployment.query(
                "SELECT COUNT(*) FROM task_instance WHERE dag_id = ? AND task_id = 'check_hits' AND state = 'success'",
                CHECK,
            )
            assert hits[0][0] >= 1, "no triggered run got as far as the retrieval check"

            # An export that changes nothing: no asset event, so no new check run.
            deployment.cli("dags", "trigger", EXPORT)
            deployment.wait_until(lambda: all_finished(EXPORT, 2), 300, "the second export run")
            assert [state for _, state in runs(EXPORT)] == ["success", "success"], deployment.logs()
            time.sleep(QUIET_SECONDS)
            assert events() == first_events
            assert runs(CHECK) == checks
            logged = "\n".join(deployment.log(name) for name in ("api-server", "scheduler"))
            warnings = ("not found; cannot create asset event", "inactive AssetModel", "inactive assets")
            assert [warning for warning in warnings if warning in logged] == []
